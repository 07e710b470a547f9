"""What a session writes is in the store: each read here goes through the store (after a
restart of the local runtime, or with the store object), never the resident copy.

Also the prompt's history window and the exact message-size limit.
"""

from __future__ import annotations

import asyncio

import pytest

import repertory
from contract_helpers import STORES, make_store, restart_local, start_local
from openai_server import OpenAIServer
from repertory import Agent, InvalidInput, MessageTooLarge, Session
from repertory.stores.codec import MsgpackCodec, unpack_array

pytestmark = pytest.mark.redis  # parametrised over SQLite and Redis (127.0.0.1:6379 db 15)

DEMO = Agent("Demo", model=repertory.DEMO_MODEL)


@pytest.fixture(params=STORES)
def store(request, tmp_path):
    return make_store(request, tmp_path)


@pytest.fixture
def local(store):
    start_local(store)
    yield store
    if repertory.is_initialized():
        repertory.shutdown()


@pytest.fixture
def server():
    with OpenAIServer() as srv:
        yield srv


def _stored(path, key: str) -> tuple[dict, list[dict]] | None:
    """The meta and messages of ``key`` as the SQLite file at ``path`` holds them."""
    from repertory.stores import SQLiteStore

    async def load():
        store = SQLiteStore(path)
        try:
            return await store.load(key)
        finally:
            await store.close()

    rec = asyncio.run(load())
    if rec is None:
        return None
    codec = MsgpackCodec()
    return codec.decode(rec.meta), [codec.decode(m) for m in rec.messages]


HISTORY = [{"role": "user", "content": "Hi, I'm Bea."}, {"role": "assistant", "content": "Hello Bea."},
           {"role": "user", "content": "Remember: blue."}]


def test_set_history_is_what_the_store_holds(local):
    s = Session("edited", agent=DEMO)
    s.chat("first words")
    s.set_history(HISTORY)
    restart_local(local)
    s = Session("edited", agent=DEMO)
    assert [(m["role"], m["content"]) for m in s.get_history()] == [(m["role"], m["content"]) for m in HISTORY]
    s.chat("and then")  # a turn appends after the stored history, not the resident one
    restart_local(local)
    contents = [m["content"] for m in Session("edited", agent=DEMO).get_history()]
    assert contents[:3] == [m["content"] for m in HISTORY] and contents[3] == "and then" and len(contents) == 5


def test_set_history_on_a_new_session_creates_it(local):
    Session("fresh", agent=DEMO).set_history(HISTORY[:2])
    restart_local(local)
    s = Session("fresh", agent=DEMO)
    assert s.exists() and [m["content"] for m in s.get_history()] == [m["content"] for m in HISTORY[:2]]


def test_clear_and_state_edits_reach_the_store(sqlite_path):
    s = Session("cleared", agent=DEMO)
    s.chat("one")
    s.update_user_data(colour="blue")
    s.set_state({"history": HISTORY, "user_data": {"colour": "red"}, "turns": 7})
    meta, messages = _stored(sqlite_path, "cleared")
    assert [m["content"] for m in messages] == [m["content"] for m in HISTORY]
    assert meta["user_data"] == {"colour": "red"} and meta["turns"] == 7
    s.clear()
    meta, messages = _stored(sqlite_path, "cleared")
    assert messages == [] and meta["user_data"] == {"colour": "red"}
    with pytest.raises(InvalidInput):
        s.set_history([{"role": "user"}])
    assert _stored(sqlite_path, "cleared")[1] == []


@pytest.fixture
def sqlite_path(tmp_path):
    path = tmp_path / "state.db"
    repertory.init(runtime="local", store=f"sqlite:///{path}")
    yield path
    if repertory.is_initialized():
        repertory.shutdown()


# -- the history window ---------------------------------------------------------------------
def _sent(server, i: int) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in server.requests[i]["messages"] if m["role"] != "system"]


def test_history_window_sends_the_last_messages_only(local, server):
    windowed = Agent("Windowed", model="openai/test-model", api_base=server.base_url, api_key="k",
                     history_window=3)
    s = Session("windowed", agent=windowed)
    for word in ("one", "two", "three"):
        s.chat(word)
    assert _sent(server, 0) == [("user", "one")]
    assert _sent(server, 1) == [("user", "one"), ("assistant", "echo: one"), ("user", "two")]
    assert _sent(server, 2) == [("assistant", "echo: one"), ("user", "two"), ("assistant", "echo: two"),
                                ("user", "three")]
    restart_local(local)  # the window is cut from the stored history
    Session("windowed", agent=windowed).chat("four")
    assert _sent(server, 3) == [("assistant", "echo: two"), ("user", "three"), ("assistant", "echo: three"),
                                ("user", "four")]
    # without a window, the whole history goes
    whole = Agent("Whole", model="openai/test-model", api_base=server.base_url, api_key="k")
    Session("windowed", agent=whole).chat("five")
    assert len(_sent(server, 4)) == 9 and _sent(server, 4)[0] == ("user", "one")


# -- the message-size limit -----------------------------------------------------------------
LIMIT = 12  # bytes


def test_message_size_limit_is_exact_in_utf8_bytes(store):
    start_local(store, max_message_bytes=LIMIT)
    try:
        s = Session("sized", agent=DEMO)
        at_limit = "\u00e9" * (LIMIT // 2)  # 6 characters, 12 bytes
        s.chat(at_limit)
        for over in ("\u00e9" * (LIMIT // 2) + "a",  # 7 characters, 13 bytes
                     "\u20ac" * (LIMIT // 3 + 1),  # 5 characters, 15 bytes
                     "a" * (LIMIT + 1)):
            with pytest.raises(MessageTooLarge, match=f"{len(over.encode())} bytes, over the limit of {LIMIT}"):
                s.chat(over)
            with pytest.raises(MessageTooLarge):
                list(s.stream(over))
        s.chat("a" * LIMIT)
        restart_local(store, max_message_bytes=LIMIT)
        users = [m["content"] for m in Session("sized", agent=DEMO).get_history() if m["role"] == "user"]
        assert users == [at_limit, "a" * LIMIT]
    finally:
        repertory.shutdown()


def test_message_errors_say_what_to_do():
    from repertory.errors import EmptyMessage
    from repertory.state.session_state import check_message

    with pytest.raises(InvalidInput, match="^a message must be a str, got int$"):
        check_message(5, LIMIT)
    with pytest.raises(EmptyMessage, match="^the message is empty; send some text$"):
        check_message(" \n", LIMIT)
    with pytest.raises(MessageTooLarge, match=r"^the message is 13 bytes, over the limit of 12; split it, store "
                                              r"large data elsewhere and send a reference, or raise "
                                              r"init\(max_message_bytes=\.\.\.\)$"):
        check_message("a" * 13, LIMIT)
    assert check_message("\u00e9" * 6, LIMIT) == "\u00e9" * 6
