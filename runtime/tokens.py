"""Signed session tokens: ``rpt1.<kid>.<claims>.<signature>``.

A token says *which session of which user* its holder may use, until when. The claims are
compact JSON (``sid``, ``uid``, ``iat``, ``exp``, ``fork``), base64url without padding; the
signature is HMAC-SHA256 over ``rpt1.<kid>.<claims>`` with the secret the key id names. A
:class:`Keyring` holds several secrets (rotation: old tokens verify until their key is
removed) and signs with one. Comparison is constant-time; a token is at most
:data:`MAX_TOKEN_LENGTH` characters; every rejection is :class:`~repertory.errors.InvalidToken`
(or :class:`~repertory.errors.AccessDenied` for a genuine token of another session or user).

Secrets come from the caller or from ``$REPERTORY_SECRET_KEYS``: comma-separated
``kid:secret`` pairs (or bare secrets, whose key id is derived from them), the first signs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from repertory.errors import AccessDenied, InvalidInput, InvalidToken
from repertory.ids import validate_session_id, validate_user_id

__all__ = ["DEFAULT_TTL", "ENV_KEYS", "MAX_TOKEN_LENGTH", "USER_SCOPE", "Keyring", "TokenClaims", "issue", "issue_user",
           "verify"]

PREFIX = "rpt1"
ENV_KEYS = "REPERTORY_SECRET_KEYS"
MAX_TOKEN_LENGTH = 1024  # ids are at most 128 characters: a real token is ~250
DEFAULT_TTL = 3600.0
# The session id claim of a *user token*: every session of one user, in the inspector. No
# session id can be "*", so a user token opens no session endpoint and a session token
# never passes for a user token.
USER_SCOPE = "*"
MIN_SECRET_BYTES = 16
_KID_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_B64_RE = re.compile(r"^[A-Za-z0-9_-]+$")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not _B64_RE.fullmatch(text):
        raise ValueError("not base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:  # unused low bits set: another spelling of the same bytes
        raise ValueError("not canonical base64url")
    return data


def _secret_bytes(secret: str | bytes) -> bytes:
    data = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if len(data) < MIN_SECRET_BYTES:
        raise InvalidInput(f"a token secret must be at least {MIN_SECRET_BYTES} bytes; use e.g. "
                           "python -c 'import secrets; print(secrets.token_urlsafe(32))'")
    return data


class Keyring:
    """Accepted secrets by key id; ``signing`` (default: the first) signs new tokens.

    ``Keyring({"k2": new, "k1": old})`` signs with ``k2`` and still verifies tokens of ``k1``;
    drop ``k1`` to revoke them. Secrets never appear in ``repr``.
    """

    def __init__(self, secrets: Mapping[str, str | bytes], signing: str | None = None) -> None:
        if not secrets:
            raise InvalidInput(f"no token secrets: set {ENV_KEYS} (kid:secret,...) or pass secret=")
        self._keys: dict[str, bytes] = {}
        for kid, secret in secrets.items():
            if not isinstance(kid, str) or not _KID_RE.fullmatch(kid):
                raise InvalidInput(f"key id {kid!r} must be 1 to 32 letters, digits, '_' or '-'")
            self._keys[kid] = _secret_bytes(secret)
        self.signing = signing if signing is not None else next(iter(self._keys))
        if self.signing not in self._keys:
            raise InvalidInput(f"signing key id {self.signing!r} is not among the key ids {sorted(self._keys)}")

    @classmethod
    def of(cls, secret: str | bytes | Keyring | Mapping[str, str | bytes] | None) -> Keyring:
        """A keyring from a keyring, a mapping, one secret (its key id derived from it) or the env."""
        if isinstance(secret, Keyring):
            return secret
        if secret is None:
            return cls.from_env()
        if isinstance(secret, Mapping):
            return cls(secret)
        data = _secret_bytes(secret)
        return cls({hashlib.sha256(b"repertory-kid:" + data).hexdigest()[:8]: data})

    @classmethod
    def from_env(cls, value: str | None = None) -> Keyring:
        """The keyring in ``$REPERTORY_SECRET_KEYS`` (``kid:secret,...`` or bare secrets; first signs)."""
        text = os.environ.get(ENV_KEYS, "") if value is None else value
        keys: dict[str, bytes] = {}
        for item in (p.strip() for p in text.split(",")):
            if not item:
                continue
            kid, sep, secret = item.partition(":")
            if not sep:
                keys.update(cls.of(item)._keys)
            else:
                keys[kid] = _secret_bytes(secret)
        return cls(keys)

    @property
    def kids(self) -> list[str]:
        return list(self._keys)

    def _sign(self, kid: str, payload: bytes) -> bytes:
        return hmac.new(self._keys[kid], payload, hashlib.sha256).digest()

    def __repr__(self) -> str:
        return f"Keyring(kids={self.kids}, signing={self.signing!r})"


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a verified token allows: one session of one user (or of no user) until ``expires_at``.
    ``allow_fork``: the holder may fork the session into a new session id of the same user."""

    session_id: str
    user_id: str | None
    issued_at: float
    expires_at: float
    allow_fork: bool = False
    kid: str = ""


def issue(session_id: str, user_id: str | None = None, ttl: float = DEFAULT_TTL,
          secret: str | bytes | Keyring | Mapping[str, str | bytes] | None = None, *,
          allow_fork: bool = False, now: float | None = None) -> str:
    """A token for ``session_id`` of ``user_id``, valid for ``ttl`` seconds, signed with
    ``secret`` (a secret, a :class:`Keyring`, or ``$REPERTORY_SECRET_KEYS``)."""
    validate_session_id(session_id)
    return _issue(session_id, user_id, ttl, secret, allow_fork, now)


def issue_user(user_id: str, ttl: float = DEFAULT_TTL,
               secret: str | bytes | Keyring | Mapping[str, str | bytes] | None = None, *,
               now: float | None = None) -> str:
    """A user token: lets the session inspector show (and act on) ``user_id``'s sessions only.
    Verify it with ``verify(token, USER_SCOPE, any_user=True)``."""
    if not isinstance(user_id, str) or not user_id:
        raise InvalidInput("a user token needs a user_id")
    return _issue(USER_SCOPE, user_id, ttl, secret, False, now)


def _issue(session_id: str, user_id: str | None, ttl: float, secret: str | bytes | Keyring | Mapping[str, str | bytes] | None,
           allow_fork: bool, now: float | None) -> str:
    validate_user_id(user_id)
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not 0 < ttl <= 366 * 86400:
        raise InvalidInput("ttl must be a number of seconds, more than 0 and at most a year")
    ring = Keyring.of(secret)
    t = time.time() if now is None else now
    claims = {"sid": session_id, "uid": user_id, "iat": int(t), "exp": round(t + ttl, 3),
              "fork": bool(allow_fork)}
    body = f"{PREFIX}.{ring.signing}.{_b64(json.dumps(claims, separators=(',', ':')).encode())}"
    return f"{body}.{_b64(ring._sign(ring.signing, body.encode('ascii')))}"


def _parse(token: object, ring: Keyring) -> tuple[str, dict[str, Any]]:
    if not isinstance(token, str) or not token:
        raise InvalidToken("no session token; send one (Authorization: Bearer <token>)")
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken(f"the token is longer than {MAX_TOKEN_LENGTH} characters; it is not a repertory token")
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != PREFIX:
        raise InvalidToken("the token is not a repertory token (rpt1.<kid>.<claims>.<signature>)")
    _, kid, claims_b64, sig_b64 = parts
    if kid not in ring.kids:  # key ids are not secret; an unknown one is a revoked or foreign key
        raise InvalidToken("the token is signed with a key this server does not accept; ask for a new token")
    try:
        sig = _unb64(sig_b64)
    except (ValueError, binascii.Error):
        raise InvalidToken("the token's signature is malformed; ask for a new token") from None
    if not hmac.compare_digest(sig, ring._sign(kid, f"{PREFIX}.{kid}.{claims_b64}".encode("ascii"))):
        raise InvalidToken("the token's signature does not match; ask for a new token")
    try:
        claims = json.loads(_unb64(claims_b64))
        if not (isinstance(claims, dict) and isinstance(claims.get("sid"), str)
                and isinstance(claims.get("exp"), (int, float)) and isinstance(claims.get("iat"), (int, float))
                and (claims.get("uid") is None or isinstance(claims["uid"], str))):
            raise ValueError("claims")
    except (ValueError, binascii.Error):  # signed by us yet unreadable: a bug, never a forgery
        raise InvalidToken("the token's claims are malformed; ask for a new token") from None
    return kid, claims


def verify(token: str, session_id: str | None = None, user_id: str | None = None,
           secret: str | bytes | Keyring | Mapping[str, str | bytes] | None = None, *,
           any_user: bool = False, now: float | None = None) -> TokenClaims:
    """The claims of ``token`` if it is genuine, unexpired and (when ``session_id`` is given)
    bound to ``session_id`` and ``user_id``; ``any_user=True`` skips the user check.

    Raises :class:`InvalidToken` (malformed, expired, unknown key, bad signature) or
    :class:`AccessDenied` (a genuine token of another session or user).
    """
    ring = Keyring.of(secret)
    kid, claims = _parse(token, ring)
    t = time.time() if now is None else now
    if claims["exp"] <= t:
        raise InvalidToken("the token has expired; ask for a new one")
    if session_id is not None and not hmac.compare_digest(claims["sid"].encode(), session_id.encode()):
        raise AccessDenied("this token is for another session")
    if session_id is not None and not any_user and claims.get("uid") != user_id:
        raise AccessDenied("this token is for another user")
    return TokenClaims(claims["sid"], claims.get("uid"), float(claims["iat"]), float(claims["exp"]),
                       bool(claims.get("fork")), kid)
