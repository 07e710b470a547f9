import pickle
import struct
import zlib

import msgpack
import pytest

from repertory.errors import CorruptState, InvalidInput, UnsupportedFormat
from repertory.stores.codec import MAGIC, MsgpackCodec, register_migration, _MIGRATIONS

codec = MsgpackCodec()


def test_round_trip_plain_data():
    value = {"a": [1, 2.5, "x", None, True, b"\x00\xff"], "nested": {"k": {"z": []}}}
    assert codec.decode(codec.encode(value)) == value
    # Keys are text (test_codec_strict.py); records with int keys written before still decode.


def test_refuses_unstorable_objects():
    with pytest.raises(InvalidInput, match="plain data"):
        codec.encode({"x": object()})


@pytest.mark.parametrize("data,match", [
    (b"", "empty"),
    (b"garbage that is not ours", "not repertory state"),
    (pickle.dumps({"history": []}), "pickle"),
])
def test_rejects_foreign_bytes(data, match):
    with pytest.raises(CorruptState, match=match):
        codec.decode(data, source="file x.pkl")


def test_detects_truncation_and_flipped_bytes():
    data = codec.encode({"history": ["hello"] * 10})
    with pytest.raises(CorruptState, match="checksum"):
        codec.decode(data[:-3])
    flipped = bytearray(data)
    flipped[-5] ^= 0xFF
    with pytest.raises(CorruptState, match="checksum"):
        codec.decode(bytes(flipped))


def test_future_version_is_refused():
    body = msgpack.packb({"x": 1})
    data = struct.pack(">3sBI", MAGIC, 99, zlib.crc32(body)) + body
    with pytest.raises(UnsupportedFormat, match="version 99"):
        codec.decode(data, source="state.db")


def test_extension_types_are_refused():
    body = msgpack.packb(msgpack.ExtType(5, b"evil"))
    data = struct.pack(">3sBI", MAGIC, 1, zlib.crc32(body)) + body
    with pytest.raises(CorruptState, match="extension"):
        codec.decode(data)


def test_migration_lifts_old_versions():
    v2 = MsgpackCodec(version=2)
    old = MsgpackCodec(version=1).encode({"n": 1})
    with pytest.raises(UnsupportedFormat, match="no migration"):
        v2.decode(old)
    register_migration(1, lambda body: {**body, "n": body["n"] + 1})
    try:
        assert v2.decode(old) == {"n": 2}
    finally:
        _MIGRATIONS.pop(1)
