"""Random sequences of the Session API against a plain model of what each call must do.

A hypothesis state machine drives chat, edits, checkpoints, restores, user data, fork,
merge, delete and re-creation, passivation and a second runtime writing the same session, on
the local runtime (SQLite and Redis), and checks every read against the model. Reads after
passivation come from the store, not a resident copy.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

import repertory
from repertory import Agent, Session
from repertory._sync import run_sync
from repertory.config import Settings
from repertory.runtimes.base import Runtime
from repertory.runtimes.local import LocalRuntime
from redis_server import TEST_DB_URL, drop_redis_keys

pytestmark = pytest.mark.redis

NULL = Agent("Null", model="repertory/null")
REPLY = "[null model] ok"
words = st.text(alphabet="abcdefgh ", min_size=1, max_size=12).filter(lambda t: t.strip())
keys = st.sampled_from(["plan", "lang", "tier"])


class SessionMachine(RuleBasedStateMachine):
    other: Runtime  # a second runtime on the same store (another process, in production)

    def __init__(self) -> None:
        super().__init__()
        self.sid = f"m-{uuid.uuid4().hex[:12]}"
        self.s = Session(self.sid, agent=NULL)
        self.history: list[tuple[str, str]] = []  # (role, content)
        self.user_data: dict[str, str] = {}
        self.checkpoints: dict[int, tuple[list[tuple[str, str]], dict[str, str]]] = {}
        self.exists = False

    def _snapshot(self):
        return list(self.history), dict(self.user_data)

    @rule(text=words)
    def chat(self, text):
        assert self.s.chat(text) == REPLY
        self.history += [("user", text), ("assistant", REPLY)]
        self.exists = True

    @precondition(lambda self: self.exists)
    @rule()
    def pop_turn(self):
        removed = self.s.pop_turn()
        last_user = max((i for i, (r, _) in enumerate(self.history) if r == "user"), default=None)
        expected = [] if last_user is None else self.history[last_user:]
        assert [(m["role"], m["content"]) for m in removed] == expected
        if last_user is not None:
            self.checkpoints[len(self.checkpoints) + 1] = self._snapshot()  # edits checkpoint first
            self.history = self.history[:last_user]

    @precondition(lambda self: self.exists)
    @rule(n=st.integers(min_value=0, max_value=6))
    def truncate(self, n):
        removed = self.s.truncate(n)
        assert [(m["role"], m["content"]) for m in removed] == self.history[n:]
        if self.history[n:]:
            self.checkpoints[len(self.checkpoints) + 1] = self._snapshot()
            self.history = self.history[:n]

    @precondition(lambda self: self.exists)
    @rule(data=st.data(), text=words)
    def edit_message(self, data, text):
        if not self.history:
            return
        index = data.draw(st.integers(min_value=-len(self.history), max_value=len(self.history) - 1))
        self.s.edit_message(index, text)
        self.checkpoints[len(self.checkpoints) + 1] = self._snapshot()
        role, _ = self.history[index]
        self.history[index] = (role, text)

    @rule(text=words, key=keys, value=words)
    def another_runtime_writes(self, text, key, value):
        # The other runtime chats; this one then writes without having read it: its
        # compare-and-set must fail, and its retry must keep the other's turn.
        assert Session(self.sid, agent=NULL, runtime=self.other).chat(text) == REPLY
        self.history += [("user", text), ("assistant", REPLY)]
        self.s.user_data[key] = value
        self.user_data[key] = value
        self.exists = True

    @precondition(lambda self: self.exists)
    @rule(text=words, key=keys, value=words)
    def merge(self, text, key, value):
        b = Session(f"{self.sid}-b{uuid.uuid4().hex[:6]}", agent=NULL)
        b.chat(text)
        b.user_data[key] = value  # b is the later-updated session: its value wins
        merged = self.s.merge(b)
        try:
            assert [(m["role"], m["content"]) for m in merged.get_history()] == [
                *self.history, ("user", text), ("assistant", REPLY)]
            assert dict(merged.user_data) == {**self.user_data, key: value}
            if key in self.user_data and self.user_data[key] != value:
                assert [c["key"] for c in merged.merge_conflicts] == [key]
        finally:
            merged.delete()
            b.delete()

    @rule(key=keys, value=words)
    def set_user_data(self, key, value):
        self.s.user_data[key] = value
        self.user_data[key] = value
        self.exists = True

    @precondition(lambda self: self.exists)
    @rule()
    def checkpoint(self):
        cp = self.s.create_checkpoint("manual")
        self.checkpoints[cp] = self._snapshot()
        assert sorted(self.checkpoints) == [c["id"] for c in self.s.list_checkpoints()]

    @precondition(lambda self: self.checkpoints)
    @rule(data=st.data())
    def restore(self, data):
        cp = data.draw(st.sampled_from(sorted(self.checkpoints)))
        self.s.restore_checkpoint(cp)
        history, user_data = self.checkpoints[cp]
        self.history, self.user_data = list(history), dict(user_data)

    @precondition(lambda self: self.exists)
    @rule()
    def fork(self):
        fork = self.s.fork(f"{self.sid}-f{uuid.uuid4().hex[:6]}")
        assert [(m["role"], m["content"]) for m in fork.get_history()] == self.history
        fork.delete()

    @rule()
    def delete(self):
        assert self.s.delete() is self.exists
        self.history, self.user_data, self.checkpoints, self.exists = [], {}, {}, False

    @rule()
    def passivate(self):
        rt = repertory.get_runtime()
        run_sync(self._drop, rt)

    @staticmethod
    async def _drop(rt):
        rt.host.passivate_idle(0.0)

    @invariant()
    def reads_match_the_model(self):
        assert [(m["role"], m["content"]) for m in self.s.get_history()] == self.history
        assert dict(self.s.user_data) == self.user_data
        assert self.s.exists() is self.exists


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_session_api_matches_its_model(store, tmp_path):
    prefix = f"sm{uuid.uuid4().hex[:8]}"
    url = f"sqlite:///{tmp_path / 'm.db'}" if store == "sqlite" else f"{TEST_DB_URL}?prefix={prefix}"
    repertory.init(runtime="local", store=url)
    SessionMachine.other = LocalRuntime(Settings(store=url))
    try:
        run_state_machine_as_test(SessionMachine, settings=settings(
            max_examples=40, stateful_step_count=15, deadline=None, suppress_health_check=[HealthCheck.too_slow]))
    finally:
        SessionMachine.other.shutdown()
        repertory.shutdown()
        if store == "redis":
            asyncio.run(drop_redis_keys(prefix))
