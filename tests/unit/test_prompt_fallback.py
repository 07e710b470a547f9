"""The host's fallback to whole prompts for a replica whose prompts mostly miss (its prompt
cache holds fewer sessions than are active there): when it starts, that it says so once, that
it still probes, and that it ends when the replica holds them again."""

from structlog.testing import capture_logs

from repertory.actors.agent_pool import _Misses


def test_mostly_missed_prompts_go_whole_with_one_warning_and_probes_until_they_hit_again():
    m = _Misses()
    for _ in range(_Misses.LEARN - 1):
        m.sent("r", True)
    assert not m.whole("r")  # too few to tell
    m.sent("r", True)
    with capture_logs() as logs:
        decisions = [m.whole("r") for _ in range(3 * _Misses.PROBE_EVERY)]
    assert decisions.count(False) == 3  # one in PROBE_EVERY still tries a delta
    assert [e["event"] for e in logs] == ["prompt_cache_too_small"]
    assert "prompt_cache_bytes" in logs[0]["hint"]
    assert m.resends == _Misses.LEARN and not m.whole("other")
    for _ in range(_Misses.LEARN):  # the probes hit: the replica holds the sessions again
        m.sent("r", False)
    assert not m.whole("r")
    m.sent("r", True)
    with capture_logs() as logs:  # a new episode says so again
        for _ in range(3 * _Misses.LEARN):
            m.sent("r", True)
        m.whole("r")
    assert [e["event"] for e in logs] == ["prompt_cache_too_small"]
