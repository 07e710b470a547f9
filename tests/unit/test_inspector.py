"""The session inspector's logic without Ray or HTTP: list queries and paging over a real SQLite
store, who sees what, actions (restore, undo, fork, approvals) on the local runtime, the live
tail, user tokens, and the packaged page."""

from __future__ import annotations

import asyncio
import time
from importlib import resources

import pytest

import repertory
from repertory import AccessDenied, Agent, InvalidInput, InvalidToken, Session, SessionNotFound, Task, Workflow, tokens
from repertory.server.auth import Authenticator, Viewer
from repertory.server.inspector import Inspector
from repertory.server.session_query import MAX_PAGE, SessionQuery, filter_infos, page
from repertory.server.ui import ASSETS, asset, page_html
from repertory.state.session_state import SessionState
from repertory.stores import SQLiteStore
from repertory.stores.base import SessionInfo
from repertory.tokens import Keyring

RING = Keyring({"k1": "inspector-secret-" + "x" * 20})
ADMIN_KEY = "admin-key-" + "z" * 20
ADMIN = Viewer(True, None, "admin")
ALICE = Viewer(False, "alice", "tok:a")
BOB = Viewer(False, "bob", "tok:b")


# -- the packaged page ------------------------------------------------------------------------
def test_page_and_assets_are_package_data_and_load_nothing_from_elsewhere():
    folder = resources.files("repertory.server.ui").joinpath("static")
    for name in ["index.html", *ASSETS]:
        assert folder.joinpath(name).is_file(), name
    html = page_html()
    assert 'src="/ui/static/app.js"' in html
    for name in ASSETS:
        body, media_type = asset(name)
        assert body and media_type.startswith("text/")
        assert b"http://" not in body.replace(b"http://www.w3.org/2000/svg", b"") and b"https://" not in body
    with pytest.raises(KeyError):
        asset("../__init__.py")


# -- list queries -----------------------------------------------------------------------------
def info(key: str, updated_at: float, expires_at: float | None = None) -> SessionInfo:
    return SessionInfo(key, 1, 2, updated_at, expires_at)


def test_filters_search_activity_and_ttl_newest_first():
    now = 1_000_000.0
    infos = [info("alice/chat-1", now - 10), info("bob/chat-2", now - 7200, now + 60), info("solo", now - 100),
             info("~shared/x", now)]
    keys = lambda q: [i.key for i in filter_infos(infos, q, now)]  # noqa: E731
    assert keys(SessionQuery()) == ["alice/chat-1", "solo", "bob/chat-2"]
    assert keys(SessionQuery(q="CHAT")) == ["alice/chat-1", "bob/chat-2"]
    assert keys(SessionQuery(q="bob")) == ["bob/chat-2"]  # the user id is searched too
    assert keys(SessionQuery(active_within=3600)) == ["alice/chat-1", "solo"]
    assert keys(SessionQuery(idle_for=3600)) == ["bob/chat-2"]
    assert keys(SessionQuery(ttl="expiring")) == ["bob/chat-2"]
    assert keys(SessionQuery(ttl="pinned")) == ["alice/chat-1", "solo"]


@pytest.mark.parametrize("bad", [dict(limit=0), dict(limit=MAX_PAGE + 1), dict(offset=-1), dict(ttl="soon"),
                                 dict(active_within=-1)])
def test_bad_queries_are_refused_with_what_to_do(bad):
    with pytest.raises(InvalidInput):
        SessionQuery(**bad)


async def fill(store: SQLiteStore, n: int, user: str = "u", agent_every: int = 0) -> None:
    """``n`` sessions of ``user`` written straight to the store (one message each)."""
    support, sales = Agent("support").to_dict(), Agent("sales").to_dict()

    async def one(i: int) -> None:
        st = SessionState.new(f"{user}/s{i:06d}", f"s{i:06d}", user, None)
        agents = {"agent": support if agent_every and i % agent_every == 0 else sales, "agents": {}}
        write, _, _ = st.append_write([{"role": "user", "content": f"hi {i}", "timestamp": time.time()}],
                                      agents=agents)
        await store.commit(write)

    for start in range(0, n, 2000):
        await asyncio.gather(*(one(i) for i in range(start, min(n, start + 2000))))


async def test_paging_search_and_agent_filter_over_many_sessions(tmp_path):
    store = SQLiteStore(tmp_path / "state.db")
    try:
        await fill(store, 20_000, agent_every=1000)
        infos = await store.list_sessions(prefix="u/")
        assert len(infos) == 20_000
        now = time.time()
        host = lambda key: "host-0"  # noqa: E731
        total, rows, complete = await page(infos, SessionQuery(offset=100, limit=50), now, host, store.load)
        assert (total, len(rows), complete) == (20_000, 50, True)
        assert rows[0].turns == 1 and rows[0].agents and rows[0].size_bytes > 0 and rows[0].user_id == "u"
        first = await page(infos, SessionQuery(limit=50), now, host, store.load)
        assert not {r.key for r in first[1]} & {r.key for r in rows}  # pages do not overlap
        total, rows, _ = await page(infos, SessionQuery(q="s0123"), now, host, store.load)
        assert total == 100 and len(rows) == 50 and all("s0123" in r.session_id for r in rows)
        total, rows, complete = await page(infos, SessionQuery(agent="support", limit=5), now, host, store.load)
        assert len(rows) == 5 and all("support" in r.agents for r in rows)
        total, rows, complete = await page(infos, SessionQuery(agent="support", q="s0100", limit=50), now, host,
                                           store.load)
        assert (total, complete) == (1, True) and rows[0].session_id == "s010000"
    finally:
        await store.close()


# -- the inspector on the local runtime ---------------------------------------------------------
def run(coro):
    return asyncio.run(coro)


def test_users_see_only_their_sessions_and_the_admin_sees_all(rt):
    for user, sid in [("alice", "a-1"), ("alice", "a-2"), ("bob", "b-1")]:
        Session(sid, user_id=user).chat(f"hello from {user}")
    insp = Inspector()
    mine = run(insp.list_sessions(ALICE, SessionQuery()))
    assert sorted(r.session_id for r in mine.rows) == ["a-1", "a-2"] and mine.total == 2
    assert [r.session_id for r in run(insp.list_sessions(BOB, SessionQuery())).rows] == ["b-1"]
    assert run(insp.list_sessions(ADMIN, SessionQuery())).total == 3
    assert run(insp.list_sessions(ADMIN, SessionQuery(user_id="bob"))).total == 1
    with pytest.raises(AccessDenied):
        run(insp.list_sessions(ALICE, SessionQuery(user_id="bob")))
    with pytest.raises(AccessDenied):
        run(insp.session(ALICE, "b-1", "bob"))
    with pytest.raises(SessionNotFound):  # alice's b-1 is another key: it does not exist
        run(insp.session(ALICE, "b-1", None))
    with pytest.raises(AccessDenied):
        run(insp.cluster(ALICE))
    (host,) = run(insp.cluster(ADMIN))
    assert host.turns == 3


def test_restore_undo_and_fork_change_what_the_session_holds(rt, tmp_path):
    s = Session("timeline", user_id="alice")
    s.chat("first message")
    cp = s.create_checkpoint("after the first turn")
    s.chat("second message")
    insp = Inspector()
    detail = run(insp.session(ALICE, "timeline", None))
    assert [c["id"] for c in detail["checkpoints"]] == [cp] and len(detail["state"]["history"]) == 4
    run(insp.restore(ALICE, "timeline", None, cp, "checkpoint", None))
    assert [m["content"] for m in s.get_history()][0::2] == ["first message"]
    s.chat("third message")
    assert run(insp.undo(ALICE, "timeline", None, None)) == 2
    child = run(insp.fork(ALICE, "timeline", None, "timeline-fork", None))
    detail = run(insp.session(ALICE, "timeline", None))
    assert [f["session_id"] for f in detail["forks"]] == [child]
    assert run(insp.session(ALICE, child, None))["forked_from"] == "timeline"
    with pytest.raises(InvalidInput):
        run(insp.restore(ALICE, "timeline", None, "no-such-checkpoint", "checkpoint", None))


def test_approval_from_the_inspector_lets_the_workflow_go_on_and_reads_back_after_a_restart(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    repertory.init(runtime="local", store=url)
    try:
        s = Session("wf", user_id="alice")
        tasks = [Task("draft the plan", name="draft"),
                 Task("ship the plan", name="ship", depends_on=["draft"], requires_approval=True)]
        assert Workflow(tasks, session=s, name="release").run().status == "awaiting_approval"
        insp = Inspector()
        wf = run(insp.session(ALICE, "wf", None))["workflows"]["release"]
        assert wf["tasks"]["draft"]["status"] == "done" and wf["tasks"]["draft"]["started"] <= wf["tasks"]["draft"]["time"]
        assert wf["tasks"]["ship"]["depends_on"] == ["draft"]
        with pytest.raises(InvalidInput):  # only a waiting task can be decided
            run(insp.decide(ALICE, "wf", None, "release", "draft", True, None))
        run(insp.decide(ALICE, "wf", None, "release", "ship", True, "go"))
    finally:
        repertory.shutdown()
    repertory.init(runtime="local", store=url)  # what was acknowledged reads back after a restart
    try:
        entry = run(Inspector().session(ALICE, "wf", None))["workflows"]["release"]["tasks"]["ship"]
        assert (entry["status"], entry["note"], entry["depends_on"]) == ("approved", "go", ["draft"])
        s = Session("wf", user_id="alice")
        assert Workflow(tasks, session=s, name="release").run().status == "completed"
    finally:
        repertory.shutdown()


def test_tail_sends_new_messages_and_a_reset_after_an_undo(rt):
    s = Session("tail", user_id="alice")
    s.chat("one")
    insp = Inspector()

    async def watch() -> list[dict]:
        changes = insp.tail(ALICE, "tail", None, 2)
        seen = []
        try:
            async def next_change():
                return await asyncio.wait_for(anext(changes), 10)

            await s.achat("two")
            seen.append(await next_change())
            await s.apop_turn()
            seen.append(await next_change())
        finally:
            await changes.aclose()
        return seen

    appended, reset = run(watch())
    assert [m["content"] for m in appended["messages"]][:1] == ["two"] and not appended["reset"]
    assert appended["messages"][0]["index"] == 2
    assert reset["reset"] and [m["content"] for m in reset["messages"]][:1] == ["one"]


def test_the_admin_reads_a_shared_state_from_the_store(rt):
    board = repertory.SharedState("team-board")
    board.set("plan", "ship on friday")
    board.increment("votes", 2)
    snap = run(Inspector().shared_state(ADMIN, "team-board"))
    assert snap["values"] == {"plan": "ship on friday", "votes": 2} and snap["revision"] > 0
    assert run(Inspector().shared_state(ADMIN, "no-such-board")) == {"values": {}, "revision": 0}
    with pytest.raises(AccessDenied):
        run(Inspector().shared_state(ALICE, "team-board"))


def test_a_multi_agent_session_shows_its_shared_state_to_whoever_sees_the_session(rt, tmp_path):
    board = repertory.SharedState("alice-board")
    team = Session("team", user_id="alice", agents={"a": Agent("A"), "b": Agent("B")}, shared_state=board)
    team.run_agent("a", "hello")
    board.set("plan", "ship on friday")
    view = run(Inspector().session(ALICE, "team", None))
    assert view["shared_state"] == {"id": "alice-board", "values": {"plan": "ship on friday"},
                                    "revision": board.revision()}
    with pytest.raises(AccessDenied):  # bob sees neither the session nor its shared state
        run(Inspector().session(BOB, "team", "alice"))
    assert run(Inspector().session(ADMIN, "team", "alice"))["shared_state"]["id"] == "alice-board"
    Session("solo", user_id="alice").chat("hi")
    assert run(Inspector().session(ALICE, "solo", None))["shared_state"] is None
    # Recorded in the stored state: it reads back after a restart.
    store = rt.settings.store
    repertory.shutdown()
    repertory.init(runtime="local", store=store)
    assert Session("team", user_id="alice").get_state()["shared_state_id"] == "alice-board"


def test_batch_runs_record_their_progress_for_the_inspector(rt, tmp_path):
    import json

    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("".join(json.dumps({"id": f"j{i}", "messages": ["hi"]}) + "\n" for i in range(6))
                    + "not json\n")
    report = repertory.batch(jobs, tmp_path / "out.jsonl")
    assert (report.ok, report.failed) == (6, 1)
    (run_,) = run(Inspector().batch_runs(ADMIN))
    assert run_["status"] == "finished" and run_["output"] == str(tmp_path / "out.jsonl")
    assert (run_["total"], run_["ok"], run_["failed"], run_["turns"]) == (7, 6, 1, 6)
    with pytest.raises(AccessDenied):
        run(Inspector().batch_runs(ALICE))
    # A re-run with the same output updates the same record: everything done is skipped.
    repertory.batch(jobs, tmp_path / "out.jsonl")
    (again,) = run(Inspector().batch_runs(ADMIN))
    assert again["session_id"] == run_["session_id"] and again["skipped"] == 6


# -- tokens -----------------------------------------------------------------------------------
def test_user_tokens_and_the_admin_key_open_the_inspector_and_nothing_else():
    auth = Authenticator(RING, ADMIN_KEY)
    assert auth.viewer(f"Bearer {ADMIN_KEY}") == Viewer(True, None, "admin")
    token, claims = auth.issue_user("alice")
    v = auth.viewer(f"Bearer {token}")
    assert (v.admin, v.user_id, claims.session_id) == (False, "alice", tokens.USER_SCOPE)
    with pytest.raises(InvalidToken):
        auth.viewer(None)
    with pytest.raises(InvalidToken):
        auth.viewer("Bearer not-a-token")
    session_token = tokens.issue("a-1", "alice", secret=RING)
    with pytest.raises(AccessDenied):  # a session token is not a user token
        auth.viewer(f"Bearer {session_token}")
    with pytest.raises(AccessDenied):  # and a user token opens no session endpoint
        auth.session(f"Bearer {token}", "a-1")
    with pytest.raises(InvalidInput):
        tokens.issue_user("")
    assert Authenticator(None, None, open_access=True).viewer(None).admin
