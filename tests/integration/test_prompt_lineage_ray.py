"""A long session's turns on Ray (the default: agents in AgentActors) send the agent replica only
the messages it lacks, and the model still reads the whole history: after a replica restart
(it lost what it held), after a rewrite of the history, and on streamed turns."""

from __future__ import annotations

import time
import uuid

import pytest
import ray

from openai_server import OpenAIServer
from repertory import Agent, Session

pytestmark = pytest.mark.ray


def _replica(runtime):
    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
             if a["namespace"] == runtime.settings.namespace and a["name"].startswith("agent-")]
    assert len(names) == 1, names
    return ray.get_actor(names[0], namespace=runtime.settings.namespace)


def _received(replica) -> tuple[int, int]:
    """(prompts extended from what the replica held, bytes of stored messages it received)."""
    return tuple(ray.get(replica.__ray_call__.remote(
        lambda self: (getattr(self._core.prompts, "extended", 0), getattr(self._core.prompts, "received", 0))),
        timeout=60))


def _seen(server) -> list[str]:
    return [m["content"] for m in server.requests[-1]["messages"] if m["role"] != "system"]


def test_a_long_sessions_turns_send_the_replica_only_what_it_lacks(runtime):
    # ~130 KB of history: whole, each turn's prompt would be past Ray's 100 KB inline limit.
    history = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"note {i}: " + "x" * 90}
               for i in range(1200)]
    expected = [m["content"] for m in history]
    with OpenAIServer() as server:
        agent = Agent("Long", model="openai/test-model", api_base=server.base_url, api_key="k")
        s = Session(session_id=f"long-{uuid.uuid4().hex[:8]}", agent=agent)
        s.set_history(history)

        def turn(text: str, stream: bool = False) -> None:
            reply = "".join(s.stream(text)) if stream else s.chat(text)
            assert reply == f"echo: {text}"
            expected.append(text)
            assert _seen(server) == expected  # the model read the whole history
            expected.append(reply)

        turn("turn 0")
        turn("turn 1")  # the host keeps the history packed from here; the replica receives it whole
        replica = _replica(runtime)
        extended, received = _received(replica)
        for k in range(2, 5):
            turn(f"turn {k}", stream=k == 4)
        extended2, received2 = _received(replica)
        assert extended2 - extended == 3
        assert received2 - received < 3 * 1_000  # each turn: the last exchange, not 130 KB

        # A restarted replica holds nothing: it says so, and is sent the whole prompt.
        ray.kill(replica, no_restart=False)
        deadline = time.monotonic() + 60
        while True:
            try:
                _received(_replica(runtime))
                break
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
                assert time.monotonic() < deadline
                time.sleep(0.2)
        turn("after the restart")
        turn("and once more")
        assert _received(_replica(runtime))[0] == 1

        # A rewritten history is a new lineage: sent whole, then extended again.
        s.set_history(history[:10])
        expected[:] = [m["content"] for m in history[:10]]
        turn("after the rewrite")
        turn("and again")


def _counters(replica) -> dict:
    return ray.get(replica.__ray_call__.remote(lambda self: {
        k: getattr(self._core.prompts, k, 0) for k in ("extended", "received", "unknown")}), timeout=60)


def test_a_replica_that_holds_fewer_sessions_than_are_active_gets_whole_prompts(runtime_with):
    # Three long sessions take turns on a replica that holds one (200 KB of prompts): each would
    # miss, and a miss costs a round trip more than a whole prompt. After a few, the host sends
    # them whole.
    rt = runtime_with(num_hosts=1, prompt_cache_bytes=200_000)
    history = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"note {i}: " + "y" * 90}
               for i in range(1200)]
    with OpenAIServer() as server:
        agent = Agent("Rotating", model="openai/test-model", api_base=server.base_url, api_key="k")
        sessions = [Session(session_id=f"rot-{k}-{uuid.uuid4().hex[:6]}", agent=agent) for k in range(3)]
        for s in sessions:
            s.set_history(history)
        for round_ in range(14):
            for k, s in enumerate(sessions):
                text = f"round {round_} session {k}"
                assert s.chat(text) == f"echo: {text}"
                assert len(server.requests[-1]["messages"]) == 1200 + 2 * round_ + 1
    counters = _counters(_replica(rt))
    # Without the fallback, 3 × 13 - 1 prompts would have missed; it learns after 8 and then
    # probes one in 8.
    assert 8 <= counters["unknown"] <= 14, counters
    # The host counts them (HostStats, and the prompt_resends metric): a cache too small shows.
    assert sum(st["prompt_resends"] for st in rt.stats()) == counters["unknown"]
