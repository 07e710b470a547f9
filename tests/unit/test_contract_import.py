"""Contract tests for issue 16 item 15: import and load refuse records that would break the store.

Hostile inputs are built from a real export (or ``Session.save`` file) of a real session,
edited as JSON / as repertory's codec records. Must hold: a typed InvalidInput or
CorruptState at the call, nothing written, existing data intact, listing still works.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import repertory
from contract_helpers import b64, read_jsonl, restart_local, unb64
from repertory import Agent, CorruptState, InvalidInput, Session
from repertory.stores.codec import MsgpackCodec

pytestmark = pytest.mark.redis

DEMO = Agent("Demo", model=repertory.DEMO_MODEL)
codec = MsgpackCodec()
TYPED = (InvalidInput, CorruptState)


def xfail(why: str):
    return pytest.mark.xfail(strict=True, reason=f"issue 16 item 15: {why}")


@pytest.fixture
def victim(local):
    """A session with two exchanges and a checkpoint; returns (history, checkpoints)."""
    s = Session("victim", agent=DEMO)
    s.chat("My name is Alice.")
    s.create_checkpoint("named")
    s.chat("I live in Paris.")
    return s.get_history(), s.list_checkpoints()


def _assert_victim_intact(local, victim, *, exists: bool) -> None:
    restart_local(local)
    keys = [s.key for s in repertory.list_sessions()]  # listing works
    if not exists:
        assert keys == [] and not Session("victim", agent=DEMO).exists()
        return
    assert keys == ["victim"]
    s = Session("victim", agent=DEMO)
    assert s.get_history() == victim[0]
    assert s.list_checkpoints() == victim[1]
    s.chat("Still readable.")


# -- hostile export lines -------------------------------------------------------------
def _set_meta(field, value):
    def edit(line):
        meta = codec.decode(unb64(line["meta"]))
        meta[field] = value
        line["meta"] = b64(codec.encode(meta))
    return edit


def _set_cp_info(field, value):
    def edit(line):
        line["checkpoints"][0]["info"][field] = value
    return edit


def _meta_not_a_dict(line):
    line["meta"] = b64(codec.encode("x"))


LINE_EDITS = {
    "updated_at-text": pytest.param(_set_meta("updated_at", "yesterday")),
    "turns-text": pytest.param(_set_meta("turns", "many")),
    "checkpoint-id-text": pytest.param(_set_cp_info("id", "notanint")),
    "checkpoint-label-dict": pytest.param(_set_cp_info("label", {"a": 1})),
    "meta-not-a-dict": pytest.param(_meta_not_a_dict),
}


def _hostile_export(tmp_path: Path, edit) -> Path:
    path = tmp_path / "victim.jsonl"
    assert repertory.export_sessions(path, prefix="victim") == 1
    [line] = read_jsonl(path)
    assert line["checkpoints"]  # the edits below need one
    edit(line)
    hostile = tmp_path / "hostile.jsonl"
    hostile.write_text(json.dumps(line) + "\n")
    return hostile


@pytest.mark.parametrize("edit", LINE_EDITS.values(), ids=LINE_EDITS.keys())
def test_import_of_hostile_line_over_existing_session_refused_and_session_intact(local, victim, tmp_path, edit):
    hostile = _hostile_export(tmp_path, edit)
    with pytest.raises(TYPED):
        repertory.import_sessions(hostile, overwrite=True)
    _assert_victim_intact(local, victim, exists=True)


@pytest.mark.parametrize("edit", LINE_EDITS.values(), ids=LINE_EDITS.keys())
def test_import_of_hostile_line_refused_and_nothing_written(local, victim, tmp_path, edit):
    hostile = _hostile_export(tmp_path, edit)
    Session("victim", agent=DEMO).delete()
    with pytest.raises(TYPED):
        repertory.import_sessions(hostile)
    _assert_victim_intact(local, victim, exists=False)


# -- hostile session files (Session.load) -----------------------------------------------
def _file_messages_garbage(doc):
    doc["messages"] = [b"garbage"]


def _file_meta_without_user_data(doc):
    del doc["meta"]["user_data"]


def _file_meta_not_a_dict(doc):
    doc["meta"] = "x"


FILE_EDITS = {
    "messages-garbage": pytest.param(_file_messages_garbage),
    "meta-without-user_data": pytest.param(_file_meta_without_user_data),
    "meta-not-a-dict": pytest.param(_file_meta_not_a_dict),
}


def _hostile_file(tmp_path: Path, edit) -> Path:
    path = tmp_path / "victim.rps"
    Session("victim", agent=DEMO).save(path, with_checkpoints=True)
    doc = codec.decode(path.read_bytes())
    edit(doc)
    path.write_bytes(codec.encode(doc))  # a valid checksum around hostile content
    return path


@pytest.mark.parametrize("edit", FILE_EDITS.values(), ids=FILE_EDITS.keys())
def test_load_of_hostile_file_over_existing_session_refused_and_session_intact(local, victim, tmp_path, edit):
    path = _hostile_file(tmp_path, edit)
    with pytest.raises(TYPED):
        Session.load(path, agent=DEMO, session_id="victim")
    _assert_victim_intact(local, victim, exists=True)


@pytest.mark.parametrize("edit", FILE_EDITS.values(), ids=FILE_EDITS.keys())
def test_load_of_hostile_file_refused_and_nothing_written(local, victim, tmp_path, edit):
    path = _hostile_file(tmp_path, edit)
    Session("victim", agent=DEMO).delete()
    with pytest.raises(TYPED):
        Session.load(path, agent=DEMO, session_id="victim")
    _assert_victim_intact(local, victim, exists=False)


def test_load_of_untouched_file_restores_the_session(local, victim, tmp_path):
    # Control for the hostile files: the same path with no edit loads fine.
    path = _hostile_file(tmp_path, lambda doc: None)
    Session("victim", agent=DEMO).delete()
    Session.load(path, agent=DEMO)
    _assert_victim_intact(local, victim, exists=True)


# -- TTLs -------------------------------------------------------------------------------
@pytest.mark.parametrize("ttl", [pytest.param(float("inf"), id="inf"), pytest.param(float("nan"), id="nan")])
def test_non_finite_ttl_refused_and_nothing_written(local, ttl):
    with pytest.raises(InvalidInput):
        Session("forever", agent=DEMO, ttl=ttl)
    assert repertory.list_sessions() == []
