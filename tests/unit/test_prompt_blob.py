"""The host's prompt for a turn is exactly the history it holds, whatever happened to it.

``SessionState.prompt`` keeps the history packed between turns and packs only what was
appended since; an agent replica that received a prompt is sent only what it lacks
(``state.prompt``, ``agents.prompt_cache``). A hypothesis state machine appends, rewrites
(edits, truncations, imports), moves the window's start, fails commits, restarts replicas and
squeezes their room, and checks every prompt, whole and as each replica decodes it, against
one packed from scratch.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from repertory.agents.prompt_cache import PromptCache
from repertory.errors import PromptUnknown
from repertory.state import session_state
from repertory.state.prompt import in_process
from repertory.state.session_state import SessionState
from repertory.stores.codec import MsgpackCodec, array_head, pack_array, unpack_array

_codec = MsgpackCodec()
texts = st.text(alphabet="abcxyz é", min_size=1, max_size=400)


class PromptMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.state = SessionState.new("k", "sid", None)
        self.revision = 1
        self.replicas = {"r0": PromptCache(min_bytes=0), "r1": PromptCache(min_bytes=0)}
        self.whole_resends = 0
        self.sent: list = []  # recent prompts with the messages they hold

    def _apply(self, made) -> None:
        _, meta, messages = made
        self.revision += 1
        self.state.applied(self.revision, meta, messages)

    @rule(contents=st.lists(texts, min_size=1, max_size=60))
    def append(self, contents):
        self._apply(self.state.append_write([{"role": "user", "content": c} for c in contents]))

    @rule(content=texts)
    def failed_append(self, content):
        self.state.append_write([{"role": "user", "content": content}])  # never committed

    @rule(data=st.data(), content=texts)
    def edit(self, data, content):
        msgs = self.state.messages
        if not msgs:
            return
        i = data.draw(st.integers(0, len(msgs) - 1))
        new = [*msgs[:i], _codec.encode({"role": "user", "content": content}), *msgs[i + 1:]]
        self._apply(self.state.replace_write(new, self.state.meta))

    @rule(data=st.data())
    def truncate(self, data):
        n = data.draw(st.integers(0, len(self.state.messages)))
        self._apply(self.state.replace_write(self.state.messages[:n], self.state.meta))

    @rule(data=st.data(), text=texts)
    def prompt(self, data, text):
        msgs = self.state.messages
        # mostly the same start (as a session's turns have), so that lineages grow
        start = data.draw(st.one_of(st.just(0), st.just(0), st.just(min(3, len(msgs))), st.integers(0, len(msgs) + 2)))
        window = data.draw(st.one_of(st.none(), st.none(), st.none(), st.integers(1, 80)))
        before = data.draw(st.lists(st.builds(lambda c: {"role": "tool", "content": c}, texts), max_size=2))
        user = {"role": "user", "content": text}
        blob = self.state.prompt(user, window=window, start=start, before=before).blob()
        expected = msgs[start:]
        if window:
            expected = expected[-window:]
        want = pack_array([*expected, *(_codec.encode(m) for m in before), _codec.encode(user)])
        assert blob == want
        assert unpack_array(blob)[-1] == user
        name = data.draw(st.sampled_from(sorted(self.replicas)))
        replica = self.replicas[name]
        prompt = self.state.prompt(user, window=window, start=start, before=before)
        if name == "r1":  # an agent in the host's process
            got = replica.decode(in_process(prompt, replica, name))  # as AgentCore.run does
        else:
            try:
                got = replica.decode(prompt.for_replica(name))
            except PromptUnknown:
                self.whole_resends += 1
                prompt.forget(name)
                got = replica.decode(prompt.for_replica(name, whole=True))
            if data.draw(st.booleans()):  # else the call failed: the host does not know it arrived
                prompt.delivered(name)
        assert got == unpack_array(want)
        self.sent.append((prompt, unpack_array(want)))
        del self.sent[:-6]

    @rule(data=st.data())
    def late_prompt(self, data):
        # A prompt built before later turns, sent after them (a retry on another replica, a
        # parallel turn): the replica may hold more of its lineage than it has.
        if not self.sent:
            return
        prompt, want = data.draw(st.sampled_from(self.sent))
        name = data.draw(st.sampled_from(sorted(self.replicas)))
        replica = self.replicas[name]
        try:
            got = replica.decode(prompt.for_replica(name))
        except PromptUnknown:
            prompt.forget(name)
            got = replica.decode(prompt.for_replica(name, whole=True))
        assert got == want
        prompt.delivered(name)

    @invariant()
    def replicas_keep_exactly_what_they_were_sent(self):
        for replica in self.replicas.values():
            for lineage, (count, body) in replica._lineages.items():
                assert len(unpack_array(array_head(count) + body)) == count  # no more, no less
                if lineage in replica._decoded:
                    n, size, msgs = replica._decoded[lineage]
                    assert msgs == unpack_array(array_head(n) + body[:size])

    @rule(name=st.sampled_from(["r0", "r1"]), room=st.sampled_from([0, 2_000, 30_000, None]),
          decoded_room=st.sampled_from([0, 3_000, None]))
    def replica_restarts(self, name, room, decoded_room):
        sizes = {} if room is None else {"lineage_bytes": room}
        if decoded_room is not None:
            sizes["max_bytes"] = decoded_room
        self.replicas[name] = PromptCache(min_bytes=0, **sizes)


def test_prompts_match_the_history_packed_from_scratch(monkeypatch):
    monkeypatch.setattr(session_state, "PACKED_MIN_BYTES", 300)  # lineages from a few messages
    PromptMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None,
                                               suppress_health_check=[HealthCheck.too_slow])
    PromptMachine.TestCase().runTest()


def test_a_prompt_sent_after_a_later_one_of_its_lineage_reads_back_its_own_messages(monkeypatch):
    # A retry on another replica, or a parallel turn, can send a prompt after a later prompt of
    # the same lineage reached that replica: the replica then holds more than the prompt has.
    monkeypatch.setattr(session_state, "PACKED_MIN_BYTES", 300)
    state = SessionState.new("k", "sid", None)
    replica = PromptCache(min_bytes=0)

    def append(n: int) -> None:
        _, meta, messages = state.append_write([{"role": "user", "content": f"m{i} " + "x" * 50} for i in range(n)])
        state.applied(state.revision + 1, meta, messages)

    def send(prompt) -> list:
        try:
            got = replica.decode(prompt.for_replica("r"))
        except PromptUnknown:
            prompt.forget("r")
            got = replica.decode(prompt.for_replica("r", whole=True))
        prompt.delivered("r")
        return got

    append(10)
    user = {"role": "user", "content": "q"}
    state.prompt(user)  # the first prompt with this start: the next is kept, under a lineage
    first = state.prompt(user)
    assert len(send(first)) == 11
    append(4)
    late = state.prompt(user)
    append(4)
    latest = state.prompt(user)
    assert len(send(latest)) == 19
    assert len(send(late)) == 15  # sent after the latest: its own 14 messages and the question
    append(2)
    assert len(send(state.prompt(user))) == 21  # and the lineage goes on, exact
    replica._decoded.clear()  # decoded again from the kept bytes, they must be exact too
    append(2)
    assert len(send(state.prompt(user))) == 23
