"""The session test suite of tests/unit, run again on the default (Ray) runtime.

The unit tests run these on the local runtime; here the same functions get a Ray runtime as
their ``rt``, so that the two runtimes cannot drift apart. Tests that build runtimes of their
own (restarts, two runtimes on one file, TTL sweeps) stay local-only.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray

_UNIT = Path(__file__).resolve().parents[1] / "unit"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"unit_{name}", _UNIT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_durable = _load("test_durable_session")
_shared = _load("test_shared_state_local")
_memory = _load("test_memory")
_chroma = _load("test_memory_chroma")
_analytics = _load("test_analytics")
_window = _load("test_context_window")

test_checkpoint_list_restore_and_retention = _durable.test_checkpoint_list_restore_and_retention
test_restore_keeps_revision_moving_forward = _durable.test_restore_keeps_revision_moving_forward
test_fork_is_independent_and_can_start_at_a_checkpoint = _durable.test_fork_is_independent_and_can_start_at_a_checkpoint
test_pop_truncate_edit_keep_the_past_reachable = _durable.test_pop_truncate_edit_keep_the_past_reachable
test_user_data_profile_metadata_write_through = _durable.test_user_data_profile_metadata_write_through
test_context_and_results = _durable.test_context_and_results
test_save_is_atomic_and_load_restores = _durable.test_save_is_atomic_and_load_restores
test_hostile_files_raise_typed_errors_and_change_nothing = _durable.test_hostile_files_raise_typed_errors_and_change_nothing
test_async_context_manager = _durable.test_async_context_manager
test_concurrent_results_and_preferences_lose_nothing = _durable.test_concurrent_results_and_preferences_lose_nothing
test_shared_state_operations = _shared.test_operations_and_versions
test_shared_state_bad_values_and_keys_are_refused = _shared.test_bad_values_and_keys_are_refused
test_shared_state_concurrent_increments_and_cas = _shared.test_concurrent_increments_and_cas
test_shared_state_watch_yields_changes = _shared.test_watch_yields_changes
test_seed_multi_agent_snippet = _shared.test_seed_multi_agent_snippet
test_own_history_mode = _shared.test_own_history_mode
test_session_context_for_workflows = _shared.test_session_context_for_workflows

# Long-term memory runs in the AgentActors here (recall, extraction, storage); its settings
# reach them with each turn as msgpack, and a custom scorer with the agent definition.
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


# Analytics read what the AgentActors recorded on each reply (model, latency, usage, cost).
test_analytics_figures_are_exact_for_a_scripted_session = _analytics.test_analytics_figures_are_exact_for_a_scripted_session
test_turns_record_model_latency_and_usage = _analytics.test_turns_record_model_latency_and_usage
test_ratings_are_kept_apart_from_metadata = _analytics.test_ratings_are_kept_apart_from_metadata
test_failed_turns_are_counted = _analytics.test_failed_turns_are_counted
test_seed_analytics_preferences_and_context_snippets = _analytics.test_seed_snippets_run

# The window is fitted in the AgentActors; its settings and state cross to them with each turn.
test_a_5000_turn_session_stays_within_the_demo_models_context = \
    _window.test_a_5000_turn_session_stays_within_the_demo_models_context
test_summaries_fold_older_turns_and_their_tokens_are_counted = \
    _window.test_summaries_fold_older_turns_and_their_tokens_are_counted
test_drop_keeps_the_newest_messages_only = _window.test_drop_keeps_the_newest_messages_only
test_tool_rounds_stay_within_the_token_limit = _window.test_tool_rounds_stay_within_the_token_limit
test_the_prompt_carries_the_profile_and_the_agents_context = \
    _window.test_the_prompt_carries_the_profile_and_the_agents_context
test_build_context_returns_the_seed_fields = _window.test_build_context_returns_the_seed_fields
test_streamed_turns_fit_and_store_the_window = _window.test_streamed_turns_fit_and_store_the_window
test_preferences_reach_the_users_long_term_memory = _analytics.test_preferences_reach_the_users_long_term_memory


@pytest.fixture
def rt(runtime):
    """The unit suite's ``rt``, here a Ray runtime (see tests/integration/conftest.py)."""
    return runtime

# chromadb memory on Ray: one memory actor owns the folder; agent actors and the driver call it.
# (mem0 and the restart take the same actor path and run locally only: ~1-2 min of suite time.)
test_chroma_semantic_recall = _chroma.test_semantic_recall_reaches_later_sessions_of_the_same_user_only
