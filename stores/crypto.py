"""Encryption at rest: a key ring and a small authenticated envelope (AES-256-GCM).

An encrypted record::

    b"RPE" | envelope version (1 byte) | kid length (1 byte) | kid (ascii) | nonce (12 bytes) | ciphertext+tag

The associated data is the envelope header plus a *context* the caller names: the session key
and the kind of record (``meta``, ``msg``, ``cp``, ...). A blob copied to another session, or
from a message slot to a checkpoint, then fails to decrypt instead of reading as valid state.
Plain codec records start with ``b"RPS"``, so a reader tells the two apart without a key.

Keys are strings ``kid:base64key`` (32 bytes once decoded); :func:`generate_encryption_key`
makes one. A :class:`KeyRing` holds several: the first encrypts, all of them decrypt, so a key
is rotated by putting the new one first and removing the old one after ``repertory sessions
rekey``. The ``cryptography`` package is imported when a ring is built (``pip install
'repertory[encryption]'``).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from collections.abc import Callable, Iterable
from typing import Any

from repertory.errors import DecryptionFailed, EncryptionError, InvalidInput

__all__ = ["ENVELOPE_MAGIC", "KeyRing", "envelope_kid", "generate_encryption_key", "is_encrypted", "looks_sealed",
           "split_keys"]

ENVELOPE_MAGIC = b"RPE"
ENVELOPE_VERSION = 1
_NONCE = 12
_TAG = 16
_KEY_BYTES = 32
_KID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_HOW = ("a key is 'kid:base64key' with a 32-byte key (make one with `repertory keys new` or "
        "repertory.generate_encryption_key())")


def generate_encryption_key(kid: str | None = None) -> str:
    """A new random key string ``kid:base64key`` (AES-256); ``kid`` defaults to a random id."""
    kid = kid or f"k{secrets.token_hex(4)}"
    if not _KID.fullmatch(kid):
        raise InvalidInput(f"key id {kid!r} must be 1-64 characters among A-Z a-z 0-9 _ . -")
    return f"{kid}:{base64.b64encode(secrets.token_bytes(_KEY_BYTES)).decode('ascii')}"


def is_encrypted(blob: bytes) -> bool:
    """True if ``blob`` is an encryption envelope (not a plain codec record)."""
    return blob[:3] == ENVELOPE_MAGIC


def looks_sealed(blob: bytes) -> bool:
    """True if ``blob`` is shaped like an envelope of this release (header, key id, room for a
    nonce and a tag): what a reader without keys reports as encrypted rather than corrupt."""
    return (len(blob) >= 5 and blob[:3] == ENVELOPE_MAGIC and blob[3] == ENVELOPE_VERSION
            and len(blob) >= 5 + blob[4] + _NONCE + _TAG and _KID.fullmatch(blob[5:5 + blob[4]].decode("latin-1"))
            is not None)


def envelope_kid(blob: bytes) -> str | None:
    """The id of the key that encrypted ``blob``; None if it is not a well-formed envelope."""
    if len(blob) < 5 or blob[:3] != ENVELOPE_MAGIC:
        return None
    n = blob[4]
    kid = blob[5:5 + n]
    return kid.decode("ascii", "replace") if len(kid) == n else None


def _parse_key(text: Any) -> tuple[str, bytes]:
    if not isinstance(text, str) or ":" not in text:
        raise InvalidInput(f"an encryption key must be a string 'kid:base64key'; {_HOW}")
    kid, _, b64 = text.strip().partition(":")
    if not _KID.fullmatch(kid):
        raise InvalidInput(f"encryption key id {kid!r} must be 1-64 characters among A-Z a-z 0-9 _ . -; {_HOW}")
    try:
        raw = base64.b64decode(b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"encryption key {kid!r} is not valid base64; {_HOW}") from None
    if len(raw) != _KEY_BYTES:
        raise InvalidInput(f"encryption key {kid!r} decodes to {len(raw)} bytes, not {_KEY_BYTES}; {_HOW}")
    return kid, raw


def split_keys(value: str | Iterable[str] | None) -> list[str]:
    """Key strings from a setting: one string (comma-separated keys) or a list of them."""
    if value is None:
        return []
    if isinstance(value, str):
        items: list = value.split(",")
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise InvalidInput(f"encryption keys are a string 'kid:base64key' (several: comma-separated) or a list "
                           f"of them, not {type(value).__name__}")
    # a non-str item is kept, so that the parser names the mistake
    return [k.strip() if isinstance(k, str) else k for k in items if not isinstance(k, str) or k.strip()]


class KeyRing:
    """Several AES-256-GCM keys by id; the first encrypts, every one decrypts.

    Its repr names the key ids only, never the keys.
    """

    __slots__ = ("_ciphers", "_header", "_invalid_tag", "current")

    def __init__(self, keys: str | Iterable[str]) -> None:
        parsed = [_parse_key(k) for k in split_keys(keys)]
        if not parsed:
            raise InvalidInput(f"no encryption key given; {_HOW}")
        try:
            from cryptography.exceptions import InvalidTag
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError:
            raise EncryptionError("encryption at rest needs the 'cryptography' package: "
                                  "pip install 'repertory[encryption]'") from None
        self._invalid_tag = InvalidTag
        self._ciphers: dict[str, Any] = {}
        for kid, raw in parsed:
            if kid in self._ciphers:
                raise InvalidInput(f"encryption key id {kid!r} is given twice; each key needs its own id")
            self._ciphers[kid] = AESGCM(raw)
        self.current: str = parsed[0][0]
        kid = self.current.encode("ascii")
        self._header = ENVELOPE_MAGIC + bytes((ENVELOPE_VERSION, len(kid))) + kid

    @property
    def kids(self) -> list[str]:
        """The key ids, the encrypting one first."""
        return list(self._ciphers)

    def __repr__(self) -> str:
        return f"KeyRing(current={self.current!r}, kids={self.kids!r})"

    def encrypt(self, plaintext: bytes, context: bytes) -> bytes:
        """Seal ``plaintext`` under the current key, bound to ``context``."""
        header = self._header
        nonce = os.urandom(_NONCE)  # random 96-bit nonces: rotate a key well before 2**32 records
        return header + nonce + self._ciphers[self.current].encrypt(nonce, plaintext, header + context)

    def decrypt(self, blob: bytes, context: bytes, *, source: str | Callable[[], str] = "a record") -> bytes:
        """Open an envelope sealed for ``context``; :class:`DecryptionFailed` if anything differs.

        ``source`` names the record in errors (a function: built only when one is raised).
        """
        if isinstance(blob, (bytearray, memoryview)):
            blob = bytes(blob)
        n = blob[4] if len(blob) > 4 else 0
        start = 5 + n
        cipher = self._ciphers.get(blob[5:start].decode("ascii", "replace"))
        if (cipher is not None and blob[:3] == ENVELOPE_MAGIC and blob[3] == ENVELOPE_VERSION
                and len(blob) >= start + _NONCE + _TAG):
            try:
                return cipher.decrypt(blob[start:start + _NONCE], blob[start + _NONCE:], blob[:start] + context)
            except self._invalid_tag:
                pass
        raise self._failure(blob, source if isinstance(source, str) else source())

    def _failure(self, blob: bytes, source: str) -> DecryptionFailed:
        """Why ``blob`` did not open, in words."""
        if len(blob) < 5 or blob[:3] != ENVELOPE_MAGIC:
            return DecryptionFailed(f"{source} is not an encrypted record (bad header); it was altered. "
                                    "Restore it from a checkpoint or a backup")
        if blob[3] != ENVELOPE_VERSION:
            return DecryptionFailed(f"{source} has encryption envelope version {blob[3]}; this release reads "
                                    f"{ENVELOPE_VERSION}. Upgrade repertory, or restore the record from a backup")
        start = 5 + blob[4]
        kid = blob[5:start].decode("ascii", "replace")
        if kid not in self._ciphers:
            return DecryptionFailed(
                f"{source} was encrypted with key id {kid!r}, which is not configured (configured: "
                f"{', '.join(self.kids)}); add that key to encryption_key / REPERTORY_ENCRYPTION_KEY "
                "(after the current one) to read it")
        if len(blob) < start + _NONCE + _TAG:
            return DecryptionFailed(f"{source} is truncated; restore it from a checkpoint or a backup")
        return DecryptionFailed(
            f"{source} does not decrypt with key {kid!r}: the key with that id is not the one that "
            "encrypted it, or the record was altered or copied from another session. Nothing was "
            "changed; configure the right key, or restore the record from a backup")
