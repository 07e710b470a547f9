"""Settings: agent_placement is checked where it is given, and read from the environment."""

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
