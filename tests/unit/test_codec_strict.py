"""The codec refuses on encode what it cannot read back, and decoding only ever raises CorruptState."""

import struct
import zlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repertory.errors import CorruptState, EncryptionKeyMissing, InvalidInput, UnsupportedFormat
from repertory.stores.crypto import looks_sealed
from repertory.stores.values import RECORD_MAX_DEPTH
from repertory.stores.codec import (_MIGRATIONS, MAGIC, MsgpackCodec, pack_array, register_migration, unpack_array, verify,
                                    verify_all)

codec = MsgpackCodec()


def record(body: bytes, version: int = 1) -> bytes:
    """A record with a valid header and checksum around any body."""
    return struct.pack(">3sBI", MAGIC, version, zlib.crc32(body)) + body


def nested(depth: int) -> list:
    v: list = []
    for _ in range(depth - 1):
        v = [v]
    return v


# -- encode -------------------------------------------------------------------------------------
@pytest.mark.parametrize("value,match", [
    ({(1, 2): "a"}, "the tuple key"),  # was written, then decoding raised a raw TypeError
    ({1: "a"}, "the int key"),
    ({None: "a"}, "the NoneType key"),
    ({"t": (1, 2)}, "tuple, which would read back as a list"),
    ({"s": {1, 2}}, "set, which would read back as a list"),  # was silently stored as a list
    ({"x": float("nan")}, "NaN"),
    ({"n": 2**64}, "outside 64 bits"),
    ({"s": "\udc80"}, "not valid Unicode"),
    ({"o": object()}, "plain data"),
])
def test_encode_refuses_what_would_not_read_back(value, match):
    with pytest.raises(InvalidInput, match=match):
        codec.encode(value)


def test_encode_names_what_it_stores():
    with pytest.raises(InvalidInput, match=r"^user_data\['k'\] is a tuple"):
        codec.encode({"k": ()}, where="user_data")


def test_depth_of_records():
    assert codec.decode(codec.encode(nested(RECORD_MAX_DEPTH))) == nested(RECORD_MAX_DEPTH)
    for depth in (RECORD_MAX_DEPTH + 1, 100_000):
        with pytest.raises(InvalidInput, match="containers deep"):
            codec.encode(nested(depth))


# -- decode -------------------------------------------------------------------------------------
@pytest.mark.parametrize("body,what", [
    (b"\x81\x92\x01\x02\xa1a", "array as a map key (a tuple key written by older releases)"),
    (b"\x81\x81\x01\x02\x03", "map as a map key"),
    (b"\x91" * 5000 + b"\xc0", "nested past msgpack's stack"),
    (b"\xa2\xff\xfe", "invalid UTF-8 in a str"),
    (b"\x92\x01", "truncated body (checksum valid)"),
    (b"\x01\x02", "extra data"),
    (b"\xc1", "reserved byte"),
    (b"", "empty body"),
    (msgpack.packb(msgpack.ExtType(1, b"x")), "extension type"),
    (b"\xdb\xff\xff\xff\xff", "a str claiming 4 GiB"),
])
def test_decode_raises_only_corrupt_state(body, what):
    with pytest.raises(CorruptState, match="session 'k' meta"):
        codec.decode(record(body), source="session 'k' meta")


@pytest.mark.parametrize("data", [None, "text", 42, ["x"]])
def test_decode_refuses_non_bytes(data):
    with pytest.raises(CorruptState, match="not encoded state"):
        codec.decode(data, source="file x")


def test_decode_accepts_bytes_likes():
    data = codec.encode({"a": 1})
    assert codec.decode(bytearray(data)) == codec.decode(memoryview(data)) == {"a": 1}


def test_records_with_int_keys_from_older_releases_still_decode():
    assert codec.decode(record(msgpack.packb({3: "int key"}))) == {3: "int key"}


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64))
def test_any_checksum_valid_body_decodes_or_is_corrupt(body):
    try:
        codec.decode(record(body), source="fuzz")
    except CorruptState as exc:
        assert "fuzz" in str(exc)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_decode_or_are_corrupt(data):
    try:
        codec.decode(data, source="fuzz")
    except CorruptState:
        pass
    except EncryptionKeyMissing:  # only for what is shaped like an encrypted record
        assert looks_sealed(data)


def test_unpack_array_raises_corrupt_state():
    good = [codec.encode({"role": "user", "content": "x"})]
    assert unpack_array(pack_array(good)) == [{"role": "user", "content": "x"}]
    with pytest.raises(CorruptState, match="session 'k' history"):
        unpack_array(b"\x91\x81\x91\x01\x02", source="session 'k' history")


# -- migrations ---------------------------------------------------------------------------------
@pytest.fixture
def v2():
    yield MsgpackCodec(version=2)
    _MIGRATIONS.pop(1, None)


def test_a_failing_migration_is_corrupt_state(v2):
    register_migration(1, lambda body: body["missing"])
    with pytest.raises(CorruptState, match="could not be migrated from format version 1.*KeyError"):
        v2.decode(codec.encode({"x": 1}), source="old record")


def test_verify_refuses_old_records_this_release_no_longer_stores(v2):
    register_migration(1, lambda body: body)
    old = record(msgpack.packb({3: "x"}))
    with pytest.raises(CorruptState, match="old record.*int key"):
        verify(old, source="old record", codec=v2)
    assert v2.decode(verify(codec.encode({"a": 1}), codec=v2)) == {"a": 1}


def test_newer_records_stay_unsupported():
    with pytest.raises(UnsupportedFormat):
        codec.decode(record(b"\xc0", version=9))


# -- verify: the fast path for current records, the slow path for everything else ---------------
def test_verify_passes_current_records_through():
    data = codec.encode({"role": "user", "content": "x"})
    assert verify(data) == data
    assert verify(bytearray(data) + b"") == data


def test_verify_all_checks_long_messages_as_short_ones():
    # messages past 4 KB are checked through a memoryview rather than a copy of the body
    long = codec.encode({"content": "x" * 10_000})
    assert verify_all([long], source="m") == [long]
    damaged = long[:-1] + bytes((long[-1] ^ 1,))
    with pytest.raises(CorruptState, match="^m 1 failed its checksum"):
        verify_all([long, damaged], source="m")


@pytest.mark.parametrize("data,match", [
    (b"", "is empty"),
    (b"RPS", "bad header"),
    (b"XYZ\x01\x00\x00\x00\x00\xc0", "bad header"),
    (record(b"\xc0")[:-1] + b"\xc2", "failed its checksum"),
    (record(b"\xc0", version=9), "format version 9"),
    (b"XYZ" + record(b"\xc0")[3:], "bad header"),  # a valid checksum does not make it a record
])
def test_verify_slow_path_names_what_is_wrong(data, match):
    with pytest.raises((CorruptState, UnsupportedFormat), match=f"^message 3 .*{match}"):
        verify(data, source="message 3")


def test_verify_names_state_by_default():
    with pytest.raises(CorruptState, match="^state is empty"):
        verify(b"")


def test_verify_lifts_an_old_record_to_the_current_version(v2):
    register_migration(1, lambda body: {**body, "lifted": True})
    old = codec.encode({"a": 1})
    lifted = verify(old, source="old record", codec=v2)
    assert lifted[:4] == MAGIC + b"\x02"  # re-encoded in the codec's version, not returned as is
    assert v2.decode(lifted) == {"a": 1, "lifted": True}
    assert verify(lifted, codec=v2) == lifted
    with pytest.raises(UnsupportedFormat):
        verify(lifted)  # a release reading version 1 does not pass a version-2 record


def test_verify_refuses_an_old_record_whose_migration_yields_unstorable_values(v2):
    register_migration(1, lambda body: {**body, "t": float("nan")})
    with pytest.raises(CorruptState, match="old record.*NaN"):
        verify(codec.encode({"a": 1}), source="old record", codec=v2)


# -- verify_all: a session's messages on activation -----------------------------------------------
def test_verify_all_returns_the_same_list_when_every_message_is_current():
    msgs = [codec.encode({"role": "user", "content": str(i)}) for i in range(20)]
    assert verify_all(msgs, source="session 'k' message") is msgs


@pytest.mark.parametrize("data,match", [
    (b"", "is empty"),
    (record(b"\xc0")[:-1] + b"\xc2", "failed its checksum"),
    (record(b"\xc0", version=9), "format version 9"),
    (bytearray(b"RPS"), "bad header"),
])
def test_verify_all_names_the_message_that_is_wrong(data, match):
    msgs = [codec.encode({"n": i}) for i in range(5)]
    msgs[3] = data
    with pytest.raises((CorruptState, UnsupportedFormat), match=f"^session 'k' message 3 .*{match}"):
        verify_all(msgs, source="session 'k' message")


def test_verify_all_lifts_old_messages_and_leaves_its_input_alone(v2):
    register_migration(1, lambda body: {**body, "lifted": True})
    old = [codec.encode({"a": i}) for i in range(3)]
    mixed = [old[0], v2.encode({"b": 1}), old[2]]
    out = verify_all(mixed, codec=v2)
    assert out is not mixed and mixed[0] is old[0]  # a new list: the caller's record is not changed
    assert [v2.decode(m) for m in out] == [{"a": 0, "lifted": True}, {"b": 1}, {"a": 2, "lifted": True}]
