"""Long-term memory on the default (Ray) runtime: tests/unit/test_memory.py, run with a Ray
runtime as ``rt``. Memory runs in the AgentActors there (recall, extraction, storage); its
settings reach them with each turn as msgpack, and a custom scorer with the agent definition.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray

_spec = importlib.util.spec_from_file_location(
    "unit_test_memory", Path(__file__).resolve().parents[1] / "unit" / "test_memory.py")
_memory = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_memory)

test_facts_of_one_user_reach_their_later_sessions_only = _memory.test_facts_of_one_user_reach_their_later_sessions_only
test_persist_memory_without_agent_memory_uses_the_runtime_database = \
    _memory.test_persist_memory_without_agent_memory_uses_the_runtime_database
test_without_user_memory_belongs_to_the_session = _memory.test_without_user_memory_belongs_to_the_session
test_streamed_turns_remember_and_recall = _memory.test_streamed_turns_remember_and_recall
test_memories_survive_a_runtime_restart = _memory.test_memories_survive_a_runtime_restart
test_runtimes_on_different_stores_do_not_share_memories = _memory.test_runtimes_on_different_stores_do_not_share_memories
test_the_model_extracts_facts_through_litellm_and_they_reach_the_prompt = \
    _memory.test_the_model_extracts_facts_through_litellm_and_they_reach_the_prompt
test_quality_threshold_keeps_low_scores_out = _memory.test_quality_threshold_keeps_low_scores_out
test_seed_quality_scorer_works_as_written_and_gates_turns = _memory.test_seed_quality_scorer_works_as_written_and_gates_turns
test_custom_scorer_decides_what_is_kept = _memory.test_custom_scorer_decides_what_is_kept
test_seed_memory_integration_snippet = _memory.test_seed_memory_integration_snippet
test_an_unreadable_extraction_answer_falls_back_to_the_patterns = \
    _memory.test_an_unreadable_extraction_answer_falls_back_to_the_patterns


@pytest.fixture
def rt(runtime):
    """The unit suite's ``rt``, here a Ray runtime (see tests/integration/conftest.py)."""
    return runtime
