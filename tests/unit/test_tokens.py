"""Signed session tokens: genuine ones verify; every altered, expired, foreign or oversized one is refused."""

import pytest

import repertory
from repertory import AccessDenied, InvalidInput, InvalidToken, Session
from repertory.tokens import MAX_TOKEN_LENGTH, Keyring, issue, verify

SECRET = "s" * 32
OTHER = "o" * 32


def test_round_trip_binds_session_and_user():
    tok = issue("chat-1", "alice", ttl=60, secret=SECRET)
    assert tok.startswith("rpt1.") and tok.count(".") == 3
    claims = verify(tok, "chat-1", "alice", secret=SECRET)
    assert (claims.session_id, claims.user_id, claims.allow_fork) == ("chat-1", "alice", False)
    assert claims.expires_at - claims.issued_at == pytest.approx(60, abs=1)


def test_every_flipped_character_is_refused():
    tok = issue("chat-1", "alice", ttl=60, secret=SECRET)
    for i, ch in enumerate(tok):
        for repl in {"A" if ch != "A" else "B", "." if ch != "." else "x"}:
            bad = tok[:i] + repl + tok[i + 1:]
            with pytest.raises(InvalidToken):
                verify(bad, "chat-1", "alice", secret=SECRET)


def test_every_flipped_bit_is_refused():
    tok = issue("chat-1", None, ttl=60, secret=SECRET).encode()
    for i in range(len(tok)):
        for bit in range(8):
            bad = bytearray(tok)
            bad[i] ^= 1 << bit
            try:
                text = bad.decode()
            except UnicodeDecodeError:
                continue
            with pytest.raises(InvalidToken):
                verify(text, "chat-1", None, secret=SECRET)


def test_expired():
    tok = issue("chat-1", ttl=10, secret=SECRET, now=1000.0)
    assert verify(tok, "chat-1", secret=SECRET, now=1009.0).session_id == "chat-1"
    with pytest.raises(InvalidToken, match="expired"):
        verify(tok, "chat-1", secret=SECRET, now=1010.5)


def test_wrong_session_and_wrong_user():
    tok = issue("chat-1", "alice", secret=SECRET)
    with pytest.raises(AccessDenied, match="another session"):
        verify(tok, "chat-2", "alice", secret=SECRET)
    with pytest.raises(AccessDenied, match="another user"):
        verify(tok, "chat-1", "bob", secret=SECRET)
    with pytest.raises(AccessDenied, match="another user"):
        verify(tok, "chat-1", None, secret=SECRET)
    assert verify(tok, "chat-1", any_user=True, secret=SECRET).user_id == "alice"


def test_unknown_kid_wrong_secret_empty_huge_garbage():
    tok = issue("chat-1", secret=SECRET)
    with pytest.raises(InvalidToken, match="key"):
        verify(tok, "chat-1", secret=OTHER)
    forged = Keyring({tok.split(".")[1]: OTHER})  # same key id, another secret
    with pytest.raises(InvalidToken, match="signature"):
        verify(tok, "chat-1", secret=forged)
    for bad in ["", None, "rpt1", "rpt1...", "rpt2" + tok[4:], tok + ".x", "x" * (MAX_TOKEN_LENGTH + 1),
                tok + "A" * MAX_TOKEN_LENGTH, "rpt1.\u00e9.a.b"]:
        with pytest.raises(InvalidToken):
            verify(bad, "chat-1", secret=SECRET)


def test_rotation_old_tokens_verify_until_their_key_is_removed():
    old = issue("c", secret=Keyring({"k1": SECRET}))
    ring = Keyring({"k2": OTHER, "k1": SECRET})
    new = issue("c", secret=ring)
    assert new.split(".")[1] == "k2"
    assert verify(old, "c", secret=ring).kid == "k1"
    assert verify(new, "c", secret=ring).kid == "k2"
    with pytest.raises(InvalidToken):
        verify(old, "c", secret=Keyring({"k2": OTHER}))


def test_keyring_from_env_and_repr_hides_secrets(monkeypatch):
    monkeypatch.setenv("REPERTORY_SECRET_KEYS", f"k2:{OTHER}, k1:{SECRET}")
    ring = Keyring.from_env()
    assert ring.kids == ["k2", "k1"] and ring.signing == "k2"
    assert SECRET not in repr(ring) and OTHER not in repr(ring)
    assert verify(issue("c"), "c").kid == "k2"
    monkeypatch.setenv("REPERTORY_SECRET_KEYS", "")
    with pytest.raises(InvalidInput, match="REPERTORY_SECRET_KEYS"):
        issue("c")


def test_bad_arguments_are_refused():
    with pytest.raises(InvalidInput, match="at least"):
        issue("c", secret="short")
    with pytest.raises(InvalidInput, match="ttl"):
        issue("c", ttl=0, secret=SECRET)
    with pytest.raises(repertory.InvalidSessionId):
        issue("bad/id", secret=SECRET)
    with pytest.raises(InvalidInput, match="key id"):
        Keyring({"bad kid": SECRET})


def test_session_generate_and_verify_token(rt, monkeypatch):
    monkeypatch.setenv("REPERTORY_SECRET_KEYS", f"k1:{SECRET}")
    s = Session("tok-s", user_id="alice")
    tok = s.generate_session_token()
    assert s.verify_session_token(tok)
    assert not s.verify_session_token(tok[:-2])
    assert not Session("tok-s", user_id="bob").verify_session_token(tok)
    assert not Session("tok-other", user_id="alice").verify_session_token(tok)
    assert not s.verify_session_token(None)
    assert verify(tok, "tok-s", "alice").session_id == "tok-s"
