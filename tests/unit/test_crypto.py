"""The key ring and its envelope (stores/crypto.py): AES-256-GCM, key ids, associated data."""

import base64

import pytest

import repertory
from repertory.errors import DecryptionFailed, EncryptionKeyMissing, InvalidInput
from repertory.stores.codec import MsgpackCodec
from repertory.stores.crypto import KeyRing, envelope_kid, generate_encryption_key, is_encrypted

K1 = generate_encryption_key("k1")
K2 = generate_encryption_key("k2")
CTX = b"repertory\0meta\0alice/s1\0"


def test_round_trip_and_envelope_layout():
    ring = KeyRing(K1)
    blob = ring.encrypt(b"hello", CTX)
    assert is_encrypted(blob) and envelope_kid(blob) == "k1"
    assert blob[:6] == b"RPE\x01\x02k" and b"hello" not in blob
    assert ring.decrypt(blob, CTX) == b"hello"
    assert ring.encrypt(b"hello", CTX) != blob  # a fresh nonce each time


def test_every_tampered_byte_fails():
    ring = KeyRing(K1)
    blob = ring.encrypt(b"the state of a session", CTX)
    for i in range(len(blob)):
        bad = bytearray(blob)
        bad[i] ^= 0x01
        with pytest.raises(DecryptionFailed):
            ring.decrypt(bytes(bad), CTX)
    for n in range(len(blob)):  # and every truncation
        with pytest.raises(DecryptionFailed):
            ring.decrypt(blob[:n], CTX)


def test_wrong_key_with_the_same_id_fails_clearly():
    other = KeyRing(generate_encryption_key("k1"))
    blob = KeyRing(K1).encrypt(b"x", CTX)
    with pytest.raises(DecryptionFailed, match="does not decrypt with key 'k1'"):
        other.decrypt(blob, CTX)


def test_a_blob_moved_to_another_session_or_slot_fails():
    ring = KeyRing(K1)
    blob = ring.encrypt(b"x", CTX)
    with pytest.raises(DecryptionFailed, match="copied from another session"):
        ring.decrypt(blob, b"repertory\0meta\0bob/s1\0")
    with pytest.raises(DecryptionFailed):
        ring.decrypt(blob, b"repertory\0msg\0alice/s1\0")


def test_rotation_old_key_decrypts_until_removed():
    old = KeyRing(K1).encrypt(b"old", CTX)
    rotated = KeyRing([K2, K1])
    assert rotated.current == "k2"
    assert rotated.decrypt(old, CTX) == b"old"
    assert envelope_kid(rotated.encrypt(b"new", CTX)) == "k2"
    with pytest.raises(DecryptionFailed, match="key id 'k1', which is not configured"):
        KeyRing(K2).decrypt(old, CTX)


def test_comma_separated_keys_as_in_the_environment():
    assert KeyRing(f" {K2} , {K1} ").kids == ["k2", "k1"]


@pytest.mark.parametrize("bad", ["", "nokid", "k1:not base64!", "k1:" + base64.b64encode(b"short").decode(),
                                 "bad id:" + K1.split(":")[1], f"{K1},{K1}", 42],
                         ids=["empty", "no-kid", "not-base64", "short", "bad-id", "duplicate-kid", "not-a-string"])
def test_malformed_keys_are_refused_naming_the_fix(bad):
    with pytest.raises(InvalidInput, match="kid|twice|key"):
        KeyRing(bad)


def test_repr_names_ids_never_keys():
    ring = KeyRing([K2, K1])
    assert K1.split(":")[1] not in repr(ring) and "k1" in repr(ring)
    s = repertory.config.Settings(store="memory://", encryption_key=[K2, K1])
    assert K1.split(":")[1] not in repr(s) and K2.split(":")[1] not in repr(s)


def test_generated_keys_are_distinct_and_valid():
    a, b = generate_encryption_key(), generate_encryption_key()
    assert a != b and len(base64.b64decode(a.split(":")[1])) == 32
    KeyRing([a, b])
    with pytest.raises(InvalidInput):
        generate_encryption_key("no spaces")


def test_settings_read_the_environment(monkeypatch):
    from repertory.config import Settings

    monkeypatch.setenv("REPERTORY_ENCRYPTION_KEY", f"{K2},{K1}")
    assert Settings(store="memory://").keyring().kids == ["k2", "k1"]
    assert Settings(store="memory://", encryption_key=K1).keyring().kids == ["k1"]  # the argument wins
    monkeypatch.delenv("REPERTORY_ENCRYPTION_KEY")
    assert Settings(store="memory://").keyring() is None
    with pytest.raises(InvalidInput, match="encryption_required needs an encryption key"):
        Settings(store="memory://", encryption_required=True)
    with pytest.raises(InvalidInput):
        Settings(store="memory://", encryption_key="k1:nope")


def test_the_codec_says_how_to_configure_a_missing_key():
    blob = KeyRing(K1).encrypt(MsgpackCodec().encode({"a": 1}), CTX)
    with pytest.raises(EncryptionKeyMissing, match="REPERTORY_ENCRYPTION_KEY"):
        MsgpackCodec().decode(blob)


@pytest.mark.parametrize("data", [b"RPE", b"RPE\x01\x02k1", b"RPE\x02\x02k1" + bytes(40), b"RPE\x01\x02k\x00" + bytes(40)])
def test_broken_envelopes_without_a_key_are_corrupt_not_missing_keys(data):
    from repertory.errors import CorruptState

    with pytest.raises(CorruptState):
        MsgpackCodec().decode(data)
