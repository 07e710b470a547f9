"""Who may call what: session tokens for a session's endpoints, the admin key for the rest.

Every check runs before the store is touched, so 401 and 403 answers are the same whether a
session exists or not. The user a request acts for comes from its token, never from the
request: two users' sessions with one session-id string are two store keys, and one user's
token never names the other's.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass

from repertory.errors import AccessDenied, InvalidInput, InvalidToken
from repertory.ids import validate_session_id
from repertory.tokens import USER_SCOPE, Keyring, TokenClaims, issue, issue_user, verify

__all__ = ["Authenticator", "Caller", "Viewer"]


@dataclass(frozen=True, slots=True)
class Caller:
    """The verified caller of a session endpoint: whose session, and what it may do."""

    user_id: str | None
    allow_fork: bool
    expires_at: float | None
    limit_key: str  # what the rate limit counts: the token's signature, or the client address


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who looks through the inspector: the admin (every session) or one user (only theirs)."""

    admin: bool
    user_id: str | None
    limit_key: str


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


class Authenticator:
    """Checks tokens and the admin key. ``keyring=None`` with ``open_access=True``: every
    session of no user is open (the loopback-only development mode)."""

    def __init__(self, keyring: Keyring | None, admin_key: str | None, *, open_access: bool = False,
                 token_ttl: float = 3600.0) -> None:
        if keyring is None and not open_access:
            raise InvalidInput("the server has no token keys: set REPERTORY_SECRET_KEYS (kid:secret,...) or "
                               "REPERTORY_SECRET_KEYS_FILE, or run with insecure_no_auth on 127.0.0.1")
        self._keyring = keyring
        self._admin = admin_key.encode() if admin_key else None
        self.open_access = open_access
        self.token_ttl = token_ttl

    def session(self, authorization: str | None, session_id: str, client: str = "") -> Caller:
        """The caller of ``session_id``'s endpoints; raises InvalidToken (401) or AccessDenied (403)."""
        token = _bearer(authorization)
        if self.open_access and token is None:
            return Caller(None, True, None, f"client:{client}")
        if self._keyring is None:
            raise InvalidToken("this server does not issue tokens; send no Authorization header")
        if token is None:
            raise InvalidToken("this endpoint needs a session token: send 'Authorization: Bearer <token>' "
                               "(a remote Session takes token= or $REPERTORY_TOKEN)")
        claims = verify(token, session_id, secret=self._keyring, any_user=True)
        return Caller(claims.user_id, claims.allow_fork, claims.expires_at, "tok:" + token.rsplit(".", 1)[-1])

    def require_admin(self, authorization: str | None) -> None:
        """Raise unless ``authorization`` carries the admin key (compared in constant time)."""
        key = _bearer(authorization)
        if self._admin is None:
            raise AccessDenied("this server has no admin key: set REPERTORY_ADMIN_KEY to issue tokens and list "
                               "sessions over HTTP")
        if key is None:
            raise InvalidToken("this endpoint needs the admin key: send 'Authorization: Bearer <admin key>'")
        if not hmac.compare_digest(key.encode(), self._admin):
            raise AccessDenied("the admin key does not match")

    def viewer(self, authorization: str | None, client: str = "") -> Viewer:
        """The inspector's caller: the admin key, or a user token (``tokens.issue_user``).
        Raises InvalidToken (401) or AccessDenied (403)."""
        token = _bearer(authorization)
        if token is None:
            if self.open_access:  # loopback development mode: no keys, everything is open
                return Viewer(True, None, f"client:{client}")
            raise InvalidToken("the inspector needs the admin key or a user token: send "
                               "'Authorization: Bearer <key or token>' (sign in on the /ui page)")
        if self._admin is not None and hmac.compare_digest(token.encode(), self._admin):
            return Viewer(True, None, "admin")
        if self._keyring is None:
            raise InvalidToken("this server issues no tokens: use the admin key")
        claims = verify(token, USER_SCOPE, secret=self._keyring, any_user=True)
        if claims.user_id is None:  # issue_user always names one; refuse anything else
            raise AccessDenied("this token names no user; ask for a user token")
        return Viewer(False, claims.user_id, "tok:" + token.rsplit(".", 1)[-1])

    def issue_user(self, user_id: str, ttl: float | None = None) -> tuple[str, TokenClaims]:
        """A new user token for the inspector, and its claims."""
        if self._keyring is None:
            raise InvalidInput("this server has no token keys to sign with; set REPERTORY_SECRET_KEYS")
        token = issue_user(user_id, ttl or self.token_ttl, self._keyring)
        return token, verify(token, USER_SCOPE, user_id, self._keyring)

    def issue(self, session_id: str, user_id: str | None, ttl: float | None = None,
              allow_fork: bool = False) -> tuple[str, TokenClaims]:
        """A new token (for the admin endpoint and for forks) and its claims."""
        if self._keyring is None:
            raise InvalidInput("this server has no token keys to sign with; set REPERTORY_SECRET_KEYS")
        validate_session_id(session_id)
        token = issue(session_id, user_id, ttl or self.token_ttl, self._keyring, allow_fork=allow_fork)
        return token, verify(token, session_id, user_id, self._keyring)

    def fork_token(self, caller: Caller, new_session_id: str) -> str | None:
        """The token of a fork: same user, same expiry at most; None in open access."""
        if self._keyring is None:
            return None
        ttl = max(1.0, (caller.expires_at or time.time() + self.token_ttl) - time.time())
        return self.issue(new_session_id, caller.user_id, ttl, caller.allow_fork)[0]
