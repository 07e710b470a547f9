"""Settings: agent_placement and prompt_cache_bytes are checked where they are given;
agent_placement is read from the environment."""

import pytest

from repertory.config import Settings
from repertory.errors import InvalidInput


def test_agent_placement_defaults_to_actor_and_reads_the_environment(monkeypatch, tmp_path):
    store = f"sqlite:///{tmp_path / 's.db'}"
    monkeypatch.delenv("REPERTORY_AGENT_PLACEMENT", raising=False)
    assert Settings(store=store).agent_placement == "actor"
    monkeypatch.setenv("REPERTORY_AGENT_PLACEMENT", "host")
    assert Settings(store=store).agent_placement == "host"
    assert Settings(store=store, agent_placement="actor").agent_placement == "actor"  # an argument wins


@pytest.mark.parametrize("bad", ["hosts", "Host", "driver"])
def test_an_unknown_agent_placement_is_refused_naming_the_choices(bad, monkeypatch, tmp_path):
    monkeypatch.delenv("REPERTORY_AGENT_PLACEMENT", raising=False)
    with pytest.raises(InvalidInput, match="'actor' or 'host'"):
        Settings(store=f"sqlite:///{tmp_path / 's.db'}", agent_placement=bad)
    monkeypatch.setenv("REPERTORY_AGENT_PLACEMENT", bad)
    with pytest.raises(InvalidInput, match="'actor' or 'host'"):
        Settings(store=f"sqlite:///{tmp_path / 's.db'}")


@pytest.mark.parametrize("bad", [-1, 1.5, True, "64MB", None])
def test_a_prompt_cache_size_that_is_not_a_whole_number_of_bytes_is_refused(bad, tmp_path):
    with pytest.raises(InvalidInput, match="prompt_cache_bytes must be a whole number of bytes"):
        Settings(store=f"sqlite:///{tmp_path / 's.db'}", prompt_cache_bytes=bad)


async def test_with_no_prompt_cache_an_agent_in_process_is_sent_whole_prompts(tmp_path):
    import repertory

    rt = repertory.init(runtime="local", store=f"sqlite:///{tmp_path / 'p.db'}", prompt_cache_bytes=0)
    try:
        agent = repertory.Agent("Whole", model="repertory/null")
        s = repertory.Session(agent=agent, runtime=rt)
        await s.aset_history([{"role": "user", "content": f"note {i} " + "z" * 100} for i in range(300)])
        for i in range(4):
            assert await s.achat(f"turn {i}")
        prompts = rt.agents.cores[agent.key].prompts
        assert (prompts.received, prompts.extended, len(prompts._lineages)) == (0, 0, 0)
        assert prompts.hits >= 2  # whole blobs, decoded as before: only their new messages
    finally:
        repertory.shutdown()
