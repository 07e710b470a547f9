"""Server settings, secrets and the error mapping, without a server."""

from __future__ import annotations

import pytest

from repertory import errors
from repertory.errors import AccessDenied, InvalidInput, InvalidToken, RateLimited, ServerError, ServerUnavailable
from repertory.server import ServerConfig
from repertory.server.auth import Authenticator
from repertory.server.config import is_loopback
from repertory.server.http import status_of
from repertory.session.transport import error_of_response
from repertory.tokens import Keyring, issue

SECRET = "unit-secret-" + "u" * 24


def test_open_access_only_on_loopback():
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        assert is_loopback(host)
        ServerConfig(host=host, insecure_no_auth=True)
    for host in ("0.0.0.0", "::", "192.168.1.100", "example.com"):
        assert not is_loopback(host)
        with pytest.raises(InvalidInput, match="refused"):
            ServerConfig(host=host, insecure_no_auth=True)


def test_secrets_from_code_env_and_files(tmp_path, monkeypatch):
    for name in ("REPERTORY_SECRET_KEYS", "REPERTORY_SECRET_KEYS_FILE", "REPERTORY_ADMIN_KEY",
                 "REPERTORY_ADMIN_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    assert ServerConfig().keyring() is None and ServerConfig().admin() is None
    with pytest.raises(InvalidInput, match="REPERTORY_SECRET_KEYS"):
        Authenticator(None, None)
    cfg = ServerConfig(secret_keys=Keyring({"k1": SECRET}), admin_key="a" * 20)
    assert SECRET not in repr(cfg) and "a" * 20 not in repr(cfg)
    bare = cfg.without_secrets()
    assert bare.secret_keys is None and bare.admin_key is None
    keys = tmp_path / "keys"
    keys.write_text(f"k2:{SECRET}\n")
    monkeypatch.setenv("REPERTORY_SECRET_KEYS_FILE", str(keys))
    monkeypatch.setenv("REPERTORY_ADMIN_KEY", "b" * 20)
    assert ServerConfig().keyring().kids == ["k2"] and ServerConfig().admin() == "b" * 20
    monkeypatch.setenv("REPERTORY_ADMIN_KEY", "short")
    with pytest.raises(InvalidInput, match="16"):
        ServerConfig().admin()
    with pytest.raises(InvalidInput, match="cannot read"):
        ServerConfig(secret_keys_file=str(tmp_path / "missing")).keyring()


def test_authenticator():
    auth = Authenticator(Keyring({"k1": SECRET}), "admin-" + "x" * 20)
    tok = issue("s1", "u1", secret=Keyring({"k1": SECRET}), allow_fork=True)
    caller = auth.session(f"Bearer {tok}", "s1")
    assert (caller.user_id, caller.allow_fork) == ("u1", True)
    with pytest.raises(InvalidToken):
        auth.session(None, "s1")
    with pytest.raises(InvalidToken):
        auth.session(f"Basic {tok}", "s1")
    with pytest.raises(AccessDenied):
        auth.session(f"Bearer {tok}", "s2")
    auth.require_admin("Bearer admin-" + "x" * 20)
    with pytest.raises(InvalidToken):
        auth.require_admin(None)
    with pytest.raises(AccessDenied):
        auth.require_admin("Bearer admin-" + "y" * 20)
    fork = auth.fork_token(caller, "s1-b")
    assert auth.session(f"Bearer {fork}", "s1-b").user_id == "u1"
    opened = Authenticator(None, None, open_access=True)
    assert opened.session(None, "any").user_id is None
    with pytest.raises(AccessDenied, match="admin"):
        opened.require_admin("Bearer whatever")


def _all_errors():
    stack, out = [errors.RepertoryError], []
    while stack:
        cls = stack.pop()
        out.append(cls)
        stack.extend(cls.__subclasses__())
    return [c for c in out if c.__module__ == "repertory.errors"]


def test_every_error_class_round_trips_its_wire_code():
    for cls in _all_errors():
        exc = cls("what happened; what to do")
        back = errors.error_from_code(errors.error_code(exc), str(exc))
        assert type(back) is cls and str(back) == str(exc)
    assert errors.error_code(ValueError("x")) == "ServerError"
    assert type(errors.error_from_code("NoSuchThing", "m")) is ServerError
    assert type(errors.error_from_code("ValueError", "m")) is ServerError
    limited = errors.error_from_code("RateLimited", "slow down", retry_after=2.5)
    assert isinstance(limited, RateLimited) and limited.retry_after == 2.5


def test_statuses_and_answers_that_are_not_repertory_errors():
    assert status_of(InvalidToken("x")) == 401 and status_of(AccessDenied("x")) == 403
    assert status_of(errors.MessageTooLarge("x")) == 413 and status_of(errors.EmptyMessage("x")) == 400
    assert status_of(errors.SessionNotFound("x")) == 404 and status_of(RateLimited("x")) == 429
    assert status_of(errors.CorruptState("x")) == 500 and status_of(errors.StoreUnavailable("x")) == 503
    assert isinstance(error_of_response(502, b"<html>bad gateway</html>"), ServerUnavailable)
    assert type(error_of_response(500, b"oops")) is ServerError
    assert isinstance(error_of_response(404, b'{"error": {"code": "SessionNotFound", "message": "gone"}}'),
                      errors.SessionNotFound)
