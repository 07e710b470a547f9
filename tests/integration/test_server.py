"""The HTTP server and the remote Session, end to end: uvicorn on 127.0.0.1 (port 0), the Ray
runtime, SQLite and Redis. State stays on the server; tokens bind a session and a user."""

from __future__ import annotations

import asyncio
import os
import uuid

import httpx
import pytest

import repertory
from contract_helpers import STORES, Store
from repertory import (AccessDenied, EmptyMessage, InvalidInput, InvalidToken, MessageTooLarge, RateLimited,
                       ServerUnavailable, Session, SessionNotFound, tokens)
from repertory.server import ServerConfig, serve_in_thread
from repertory.tokens import Keyring

pytestmark = pytest.mark.ray

SECRET = "test-secret-" + "x" * 24
ADMIN = "admin-key-" + "y" * 20
RING = Keyring({"k1": SECRET})


def start(store_url: str, tmp_path) -> None:
    repertory.init(store=store_url, num_hosts=2, namespace=f"srv{os.getpid()}-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module", params=STORES)
def server(request, ray_cluster, tmp_path_factory):
    """A runtime over SQLite or Redis and a server over it, for the whole module."""
    tmp = tmp_path_factory.mktemp(f"server-{request.param}")
    store = Store(request.param, tmp)
    start(store.url, tmp)
    handle = serve_in_thread(ServerConfig(port=0, secret_keys=RING, admin_key=ADMIN))
    handle.store = store
    yield handle
    handle.stop()
    repertory.shutdown()
    store.drop()


def sid() -> str:
    return f"s-{uuid.uuid4().hex[:12]}"


def remote(server, session_id: str, user_id: str | None = None, **claims) -> Session:
    return Session(agent_url=server.url, session_id=session_id,
                   token=tokens.issue(session_id, user_id, secret=RING, **claims))


def test_seed_snippet_runs_and_state_stays_on_the_server(server, monkeypatch):
    session_id = sid()
    monkeypatch.setenv("REPERTORY_TOKEN", tokens.issue(session_id, secret=RING))
    remote_session = Session(agent_url=server.url, session_id=session_id)
    response = remote_session.chat("Hello from remote client")
    assert "Hello from remote client" in response
    other = Session(agent_url=server.url, session_id=session_id, token=tokens.issue(session_id, secret=RING))
    assert [m["content"] for m in other.get_history()] == ["Hello from remote client", response]
    # The server's runtime holds it: a local handle of the same session reads it too.
    assert Session(session_id).get_history()[-1]["content"] == response


async def test_async_methods_and_typed_errors(server):
    s = remote(server, sid())
    assert not await s.aexists()
    with pytest.raises(SessionNotFound):
        await s.ainfo()
    with pytest.raises(EmptyMessage):
        await s.achat("   ")
    assert await s.acreate(user_data={"plan": "pro"}) is True
    assert (await s.ainfo())["user_data"] == {"plan": "pro"}
    reply = await s.achat("My name is Alice")
    assert "Alice" in await s.achat("What's my name?")
    assert (await s.aget_history())[1]["content"] == reply
    assert (await s.aupdate_user_data(tier=2)) == {"plan": "pro", "tier": 2}
    assert (await s.aget_state())["user_data"] == {"plan": "pro", "tier": 2}
    assert await s.adelete() is True
    assert not await s.aexists()
    await s.aclose()


def test_stream_text_equals_stored_reply(server):
    s = remote(server, sid())
    s.chat("My name is Bob")
    chunks = list(s.stream("Tell me more about what I said"))
    assert len(chunks) > 1
    assert "".join(chunks) == s.get_history()[-1]["content"]


async def test_async_stream_and_stream_errors(server):
    s = remote(server, sid())
    text = "".join([c async for c in s.astream("Hello there")])
    assert text == (await s.aget_history())[-1]["content"]
    with pytest.raises(EmptyMessage):
        async for _ in s.astream(""):
            pass


def test_resent_turn_is_answered_not_applied_twice(server):
    s = remote(server, sid())
    first = s.chat("Only once", turn_id="t-1")
    again = s.chat("Only once", turn_id="t-1")
    assert again == first
    assert len(s.get_history()) == 2
    assert "".join(s.stream("Only once", turn_id="t-1")) == first
    assert len(s.get_history()) == 2


def test_checkpoints_versions_fork(server):
    session_id = sid()
    s = remote(server, session_id, "u1", allow_fork=True)
    s.chat("My name is Alice")
    cp = s.create_checkpoint("named")
    assert [c["label"] for c in s.list_checkpoints()] == ["named"]
    s.chat("What if we use approach A?")
    s.restore_checkpoint(cp)
    assert len(s.get_history()) == 2
    v = s.save_version("reviewed")
    assert [x["description"] for x in s.list_versions()] == ["reviewed"]
    s.chat("more")
    assert s.restore_version(v) is True and len(s.get_history()) == 2
    assert s.restore_version(99) is False
    fork = s.fork(session_id + "-b")
    assert fork.session_id == session_id + "-b"
    assert [m["content"] for m in fork.get_history()] == [m["content"] for m in s.get_history()]
    assert tokens.verify(fork.token, session_id + "-b", "u1", secret=RING).user_id == "u1"
    fork.chat("a branch")
    assert len(s.get_history()) == 2 and len(fork.get_history()) == 4
    with pytest.raises(InvalidInput, match="already exists"):  # a fork never overwrites
        s.fork(session_id + "-b")
    with pytest.raises(AccessDenied, match="fork"):
        remote(server, session_id, "u1").fork(session_id + "-c")
    with pytest.raises(AccessDenied):  # the fork's token is bound to the fork
        Session(agent_url=server.url, session_id=session_id, token=fork.token).get_history()


def test_two_users_same_session_id_never_meet(server):
    session_id = sid()
    alice, bob = remote(server, session_id, "alice"), remote(server, session_id, "bob")
    alice.chat("Alice's secret is 42")
    bob.chat("Bob's secret is 7")
    assert [m["content"] for m in alice.get_history()][0] == "Alice's secret is 42"
    assert [m["content"] for m in bob.get_history()][0] == "Bob's secret is 7"
    assert len(alice.get_history()) == 2 and len(bob.get_history()) == 2
    bob.set_history([])  # bob clears his: alice's stays
    assert len(alice.get_history()) == 2
    anonymous = remote(server, session_id)  # the session of no user is a third one
    assert not anonymous.exists()


def _http(server, method: str, path: str, token: str | None = None, **kw) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}".strip()} if token is not None else {}
    headers.update(kw.pop("headers", {}))
    return httpx.request(method, server.url + path, headers=headers, timeout=30, **kw)


def test_bad_tokens_are_refused_alike_whether_the_session_exists_or_not(server):
    existing, missing = sid(), sid()
    remote(server, existing).chat("hello")
    good = tokens.issue(existing, secret=RING)
    bad_tokens = {
        "none": None,
        "empty": "",
        "expired": tokens.issue(existing, ttl=1, secret=RING, now=1000.0),
        "tampered": good[:-3] + ("A" if good[-3] != "A" else "B") + good[-2:],
        "unknown kid": tokens.issue(existing, secret=Keyring({"k9": SECRET})),
        "other secret": tokens.issue(existing, secret=Keyring({"k1": "z" * 32})),
        "huge": "rpt1." + "A" * 100_000,
        "garbage": "not a token",
    }
    for name, tok in bad_tokens.items():
        answers = []
        for session_id in (existing, missing):
            r = _http(server, "GET", f"/sessions/{session_id}/history", tok)
            assert r.status_code == 401, name
            body = r.json()["error"]
            assert body["code"] == "InvalidToken" and r.headers["x-request-id"] == body.pop("request_id")
            answers.append(body)
        assert answers[0] == answers[1], name
    other_user = tokens.issue(existing, "mallory", secret=RING)  # a genuine token of another user
    assert _http(server, "GET", f"/sessions/{existing}/history", other_user).json() == []
    for session_id in (existing, missing):  # a genuine token of another session
        r = _http(server, "GET", f"/sessions/{session_id}/history", tokens.issue("elsewhere", secret=RING))
        assert r.status_code == 403 and r.json()["error"]["code"] == "AccessDenied"
    with pytest.raises(InvalidToken, match="expired"):
        Session(agent_url=server.url, session_id=existing, token=bad_tokens["expired"]).get_history()


def test_rotated_key_still_verifies_old_tokens_until_removed(server, ray_cluster):
    old = tokens.issue("rot-1", secret=Keyring({"k0": "o" * 32}))
    with serve_in_thread(ServerConfig(port=0, secret_keys=Keyring({"k1": SECRET, "k0": "o" * 32}))) as h:
        assert Session(agent_url=h.url, session_id="rot-1", token=old).get_history() == []
    with serve_in_thread(ServerConfig(port=0, secret_keys=Keyring({"k1": SECRET}))) as h:
        with pytest.raises(InvalidToken):
            Session(agent_url=h.url, session_id="rot-1", token=old).get_history()


def test_admin_endpoints(server):
    session_id = sid()
    body = {"session_id": session_id, "user_id": "carol", "ttl": 60}
    assert _http(server, "POST", "/tokens", json=body).status_code == 401
    assert _http(server, "POST", "/tokens", "wrong" * 5, json=body).status_code == 403
    assert _http(server, "POST", "/tokens", tokens.issue(session_id, secret=RING), json=body).status_code == 403
    r = _http(server, "POST", "/tokens", ADMIN, json=body)
    assert r.status_code == 200
    s = Session(agent_url=server.url, session_id=session_id, token=r.json()["token"])
    s.chat("hi")
    listed = _http(server, "GET", "/sessions", ADMIN, params={"user_id": "carol"}).json()
    assert [x["session_id"] for x in listed] == [session_id]
    assert _http(server, "GET", "/sessions", tokens.issue(session_id, secret=RING)).status_code == 403


def test_size_limits_and_structured_errors(server):
    session_id = sid()
    tok = tokens.issue(session_id, secret=RING)
    r = _http(server, "POST", f"/sessions/{session_id}/chat", tok, content=b"x" * (2 * 1024 * 1024),
              headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "MessageTooLarge"
    chunked = (b'{"message": "' + b"x" * 65536 for _ in range(32))  # no Content-Length
    r = _http(server, "POST", f"/sessions/{session_id}/chat", tok, content=chunked,
              headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "MessageTooLarge"
    s = Session(agent_url=server.url, session_id=session_id, token=tok)
    with pytest.raises(MessageTooLarge):
        s.chat("y" * (300 * 1024))  # over the runtime's max_message_bytes, under the body limit
    assert not s.exists()  # nothing was written
    r = _http(server, "POST", f"/sessions/{session_id}/chat", tok, json={"nope": 1})
    assert r.status_code == 422 and r.json()["error"]["code"] == "InvalidInput"
    r = _http(server, "GET", "/nowhere")
    assert r.status_code == 404 and "error" in r.json()
    assert _http(server, "GET", "/health").json() == {"status": "ok"}
    assert _http(server, "GET", "/ready").status_code == 200
    schema = httpx.get(server.url.removesuffix("/agent") + "/openapi.json").json()
    assert "/agent/sessions/{session_id}/chat" in schema["paths"]


def test_rate_limit_per_token(server):
    with serve_in_thread(ServerConfig(port=0, secret_keys=RING, rate_limit="3/minute")) as h:
        a = Session(agent_url=h.url, session_id="rl-a", token=tokens.issue("rl-a", secret=RING))
        for _ in range(3):
            a.get_history()
        with pytest.raises(RateLimited) as info:
            a.get_history()
        assert info.value.retry_after is not None and info.value.retry_after > 0
        b = Session(agent_url=h.url, session_id="rl-a", token=tokens.issue("rl-a", secret=RING, ttl=99))
        assert b.get_history() == []  # another token has its own budget


async def test_200_concurrent_remote_chats_on_20_sessions(server):
    sessions = [remote(server, sid()) for _ in range(20)]
    # Two clients (two connection pools, two tokens) per session, sending at once.
    second = {s.session_id: remote(server, s.session_id) for s in sessions}
    messages = {s.session_id: [f"message {i} of {s.session_id}" for i in range(10)] for s in sessions}
    await asyncio.gather(*((s if i % 2 else second[s.session_id]).achat(m)
                           for s in sessions for i, m in enumerate(messages[s.session_id])))
    for s in sessions:
        history = await s.aget_history()
        assert len(history) == 20
        users = [m["content"] for m in history[0::2]]
        assert sorted(users) == sorted(messages[s.session_id])
        for user, reply in zip(history[0::2], history[1::2]):  # queued, never interleaved
            assert user["role"] == "user" and reply["role"] == "assistant"
            assert user["content"] in reply["content"]


def test_unreachable_server_is_typed(server):
    s = Session(agent_url="http://127.0.0.1:9/agent", session_id="x", token="t", retries=2)
    with pytest.raises(ServerUnavailable):
        s.get_history()


@pytest.mark.skipif(not hasattr(Session, "aanalytics"), reason="Session.aanalytics is not on this branch yet")
def test_analytics(server):
    s = remote(server, sid())
    s.chat("Tell me about Python")
    assert isinstance(s.analytics(), dict)


class LosingProxy:
    """A TCP proxy on 127.0.0.1 that forwards requests and drops the first ``lose`` answers
    (closes the client's connection once the server has answered): the request was applied,
    the client never heard."""

    def __init__(self, target_port: int, lose: int = 1) -> None:
        self.target_port, self.lose = target_port, lose
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/agent"

    async def _serve(self, reader, writer) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pump(src, dst) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass

        upstream = asyncio.create_task(pump(reader, up_writer))
        if self.lose > 0:
            self.lose -= 1
            await up_reader.read(65536)  # the server's answer: the turn is applied and durable
            writer.transport.abort()
            upstream.cancel()
            up_writer.close()
            return
        await pump(up_reader, writer)
        upstream.cancel()
        writer.close()
        up_writer.close()

    async def stop(self) -> None:
        self.server.close()


async def test_a_turn_whose_answer_was_lost_is_resent_and_answered_once(server):
    port = int(server.url.rsplit(":", 1)[1].split("/")[0])
    proxy = LosingProxy(port, lose=1)
    url = await proxy.start()
    session_id = sid()
    s = Session(agent_url=url, session_id=session_id, token=tokens.issue(session_id, secret=RING), retries=3)
    try:
        reply = await s.achat("Apply me once")  # first answer lost; the resend is answered from the records
        history = await remote(server, session_id).aget_history()
        assert [m["content"] for m in history] == ["Apply me once", reply]
        proxy.lose = 1  # a write without an operation id is not resent: the loss surfaces
        fresh = Session(agent_url=url, session_id=session_id, token=s.token)  # a new connection
        with pytest.raises(ServerUnavailable):
            await fresh.arestore_version(0)
        await fresh.aclose()
    finally:
        await s.aclose()
        await proxy.stop()
