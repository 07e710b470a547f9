"""Session administration (repertory.admin) and the ``repertory sessions`` CLI, on the local runtime."""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

import repertory
from repertory import CorruptState, InvalidInput, Session
from repertory.admin import ImportResult, SessionSummary, parse_duration
from repertory.cli import app

DAY = 86400.0


def _init(db: Path) -> None:
    repertory.init(runtime="local", store=f"sqlite:///{db}")


@pytest.fixture
def db(tmp_path: Path):
    path = tmp_path / "s.db"
    _init(path)
    yield path
    repertory.shutdown()


def _switch(db: Path) -> None:
    """Restart the runtime on another store file."""
    repertory.shutdown()
    _init(db)


def _age(db: Path, key: str, days: float) -> None:
    """Pretend ``key`` was last updated ``days`` ago (the listing reads the column)."""
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE sessions SET updated_at = ? WHERE key = ?", (time.time() - days * DAY, key))


def _snapshot(s: Session) -> dict:
    state = s.get_state()
    return {"history": s.get_history(), "checkpoints": s.list_checkpoints(), "versions": s.list_versions(),
            "user_data": state["user_data"], "metadata": state["metadata"], "created_at": state["created_at"],
            "turns": state["turns"]}


def _rich_sessions() -> list[Session]:
    a = Session("alpha", user_id="alice", checkpoint_every=1)
    a.chat("My name is Alice")
    a.chat("I like Python")
    a.save_version("two turns")
    a.update_user_data(lang="python", blob=b"\x00\xffbytes")
    b = Session("beta")
    b.chat("hello")
    b.create_checkpoint("manual")
    c = Session("gamma", user_id="bob")
    c.chat("hi from bob")
    return [a, b, c]


# -- durations --------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("30d", timedelta(days=30)), ("12h", timedelta(hours=12)), ("45m", timedelta(minutes=45)),
    ("90s", timedelta(seconds=90)), ("2w", timedelta(weeks=2)), (" 1d12h ", timedelta(days=1, hours=12)),
    ("1.5h", timedelta(minutes=90)), ("0s", timedelta(0)),
])
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "30", "d", "3x", "-1d", "30 days", "1d-2h", None])
def test_parse_duration_rejects(text):
    with pytest.raises(InvalidInput, match="30d"):
        parse_duration(text)


# -- listing and cleanup ----------------------------------------------------------------
def test_list_sessions_filters_and_summaries(db):
    for sid, user in (("a1", "alice"), ("a2", "alice"), ("b1", None)):
        Session(sid, user_id=user).chat("hi")
    _age(db, "alice/a1", 40)
    rows = repertory.list_sessions()
    assert [r.key for r in rows] == ["alice/a1", "alice/a2", "b1"]  # least recently updated first
    first = rows[0]
    assert isinstance(first, SessionSummary)
    assert (first.session_id, first.user_id, first.n_messages, first.expires_at) == ("a1", "alice", 2, None)
    assert first.updated_at.tzinfo is not None and first.updated_at.utcoffset() == timedelta(0)
    assert datetime.now(timezone.utc) - first.updated_at > timedelta(days=39)
    assert first.revision >= 1
    assert rows[2].user_id is None and rows[2].session_id == "b1"
    assert [r.key for r in repertory.list_sessions(user_id="alice")] == ["alice/a1", "alice/a2"]
    assert [r.key for r in repertory.list_sessions(prefix="a2", user_id="alice")] == ["alice/a2"]
    assert [r.key for r in repertory.list_sessions(prefix="b")] == ["b1"]
    assert [r.key for r in repertory.list_sessions(older_than=timedelta(days=30))] == ["alice/a1"]
    assert len(repertory.list_sessions(limit=2)) == 2
    with pytest.raises(InvalidInput):
        repertory.list_sessions(limit=0)
    with pytest.raises(InvalidInput):
        repertory.list_sessions(older_than="thirty days")  # a timedelta, a number of days or "30d"


def test_cleanup_dry_run_then_delete_through_hosts(db):
    old1, old2, new = Session("old1"), Session("old2", user_id="u"), Session("new1")
    for s in (old1, old2, new):
        s.chat("remember me")
    old1.create_checkpoint("c")
    _age(db, "old1", 40)
    _age(db, "u/old2", 31)
    # old1 is resident on its host now; the cleanup must drop that copy, not just the row.
    assert len(old1.get_history()) == 2

    would = repertory.cleanup(older_than=timedelta(days=30), dry_run=True)
    assert sorted(s.key for s in would) == ["old1", "u/old2"]
    assert len(repertory.list_sessions()) == 3  # a dry run deletes nothing
    assert old1.exists() and old2.exists()

    removed = repertory.cleanup(older_than=timedelta(days=30))
    assert sorted(s.key for s in removed) == ["old1", "u/old2"]
    assert [s.key for s in repertory.list_sessions()] == ["new1"]
    assert not old1.exists() and old1.get_history() == [] and old1.list_checkpoints() == []
    assert new.get_history()[0]["content"] == "remember me"
    assert repertory.cleanup(older_than=timedelta(days=30)) == []


async def test_async_forms_from_another_loop(db):
    s = Session("async1")
    await s.achat("hi")
    assert [r.key for r in await repertory.alist_sessions()] == ["async1"]
    assert [r.key for r in await repertory.acleanup(timedelta(0), dry_run=True)] == ["async1"]
    assert [r.key for r in await repertory.acleanup(timedelta(0))] == ["async1"]
    assert await repertory.alist_sessions() == []


# -- export and import ------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["jsonl", "dir"])
def test_export_import_round_trip(db, tmp_path, fmt):
    sessions = _rich_sessions()
    before = {s.session_id: _snapshot(s) for s in sessions}
    out = tmp_path / ("export.jsonl" if fmt == "jsonl" else "export")
    assert repertory.export_sessions(out) == 3
    if fmt == "dir":
        assert sorted(p.name for p in out.iterdir()) == ["alice__alpha.rps", "beta.rps", "bob__gamma.rps"]
    else:
        lines = out.read_text().splitlines()
        assert len(lines) == 3 and json.loads(lines[0])["format"] == "repertory.session.v1"

    _switch(tmp_path / "fresh.db")
    seen: list[tuple[int, int]] = []
    result = repertory.import_sessions(out, progress=lambda done, total: seen.append((done, total)))
    assert result == 3 and isinstance(result, ImportResult) and result.skipped == ()
    assert seen[-1] == (3, 3)
    for s in sessions:
        again = Session(s.session_id, user_id=s.user_id)
        assert _snapshot(again) == before[s.session_id]
    alpha = Session("alpha", user_id="alice")
    assert alpha.user_data["blob"] == b"\x00\xffbytes"
    alpha.restore_checkpoint(1)  # checkpoint data came across intact
    assert [m["content"] for m in alpha.get_history()] == ["My name is Alice", before["alpha"]["history"][1]["content"]]


def test_export_prefix_and_without_checkpoints(db, tmp_path):
    _rich_sessions()
    out = tmp_path / "alice.jsonl"
    assert repertory.export_sessions(out, prefix="alice/", with_checkpoints=False) == 1
    line = json.loads(out.read_text())
    assert line["key"] == "alice/alpha" and line["checkpoints"] == []


def test_import_skips_existing_unless_overwrite(db, tmp_path):
    sessions = _rich_sessions()
    before = {s.session_id: _snapshot(s) for s in sessions}
    out = tmp_path / "all.jsonl"
    repertory.export_sessions(out)
    a = sessions[0]
    a.chat("a later turn")  # adds a message and an automatic checkpoint
    Session("beta").delete()

    result = repertory.import_sessions(out)
    assert result == 1 and sorted(result.skipped) == ["alice/alpha", "bob/gamma"]
    assert len(a.get_history()) == 6  # kept as it was
    assert _snapshot(Session("beta")) == before["beta"]

    result = repertory.import_sessions(out, overwrite=True)
    assert result == 3 and result.skipped == ()
    assert _snapshot(Session("alpha", user_id="alice")) == before["alpha"]  # checkpoints exactly the file's


def _rewrite_line(path: Path, n: int, fn) -> None:
    lines = path.read_text().splitlines()
    lines[n - 1] = fn(lines[n - 1])
    path.write_text("\n".join(lines) + "\n")


def _flip_message_byte(line: str) -> str:
    obj = json.loads(line)
    raw = bytearray(base64.b64decode(obj["messages"][0]))
    raw[-1] ^= 0x01
    obj["messages"][0] = base64.b64encode(bytes(raw)).decode()
    return json.dumps(obj)


@pytest.mark.parametrize("damage", [lambda line: line[: len(line) // 2], _flip_message_byte],
                         ids=["truncated", "checksum"])
def test_corrupt_jsonl_line_names_the_line_and_imports_nothing(db, tmp_path, damage):
    _rich_sessions()
    out = tmp_path / "all.jsonl"
    repertory.export_sessions(out)
    _rewrite_line(out, 2, damage)
    _switch(tmp_path / "fresh.db")
    with pytest.raises(CorruptState, match=r"all\.jsonl line 2"):
        repertory.import_sessions(out)
    assert repertory.list_sessions() == []


def test_corrupt_session_file_names_the_file_and_imports_nothing(db, tmp_path):
    _rich_sessions()
    out = tmp_path / "dump"
    repertory.export_sessions(out)
    victim = out / "beta.rps"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    _switch(tmp_path / "fresh.db")
    with pytest.raises(CorruptState, match="beta.rps"):
        repertory.import_sessions(out)
    assert repertory.list_sessions() == []


def test_import_of_a_missing_path_is_typed(db, tmp_path):
    with pytest.raises(InvalidInput):
        repertory.import_sessions(tmp_path / "nope")
    with pytest.raises(InvalidInput):
        repertory.import_sessions(tmp_path / "nope.jsonl")


# -- the CLI ----------------------------------------------------------------------------
@pytest.fixture
def cli_db(tmp_path: Path):
    """A store with sessions 'old' (40 days idle), 'fresh', and 'mine' of user 'u1'; no runtime running."""
    path = tmp_path / "cli.db"
    _init(path)
    for sid, user in (("old", None), ("fresh", None), ("mine", "u1")):
        Session(sid, user_id=user, checkpoint_every=1).chat(f"hello from {sid}")
    repertory.shutdown()
    _age(path, "old", 40)
    yield path
    repertory.shutdown()


def _run(db: Path, *args: str, input: str | None = None):
    result = CliRunner().invoke(app, ["sessions", *args, "--local", "--store", f"sqlite:///{db}"], input=input)
    assert not repertory.is_initialized()  # every command shuts its runtime down
    return result


def _keys(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return sorted(r[0] for r in conn.execute("SELECT key FROM sessions"))


def test_cli_ls(cli_db):
    result = _run(cli_db, "ls")
    assert result.exit_code == 0, result.output
    for word in ("old", "fresh", "mine", "u1", "40d ago", "never", "3 session"):
        assert word in result.output
    result = _run(cli_db, "ls", "--older-than", "30d")
    assert "old" in result.output and "fresh" not in result.output
    result = _run(cli_db, "ls", "--user", "u1")
    assert "mine" in result.output and "fresh" not in result.output


def test_cli_show(cli_db):
    result = _run(cli_db, "show", "mine", "--user", "u1")
    assert result.exit_code == 0, result.output
    for word in ("hello from mine", "assistant", "checkpoints", "auto at turn 1", "user_data", "versions"):
        assert word in result.output


def test_cli_show_prints_analytics(cli_db):
    _init(cli_db)
    Session("mine", user_id="u1").rate(0.75)
    repertory.shutdown()
    result = _run(cli_db, "show", "mine", "--user", "u1")
    assert result.exit_code == 0, result.output
    for word in ("satisfaction", "0.75 (ratings, 1 ratings)", "latency", "p50", "tokens", "cost", "errors",
                 "topics", "hello"):
        assert word in result.output, word


def test_cli_show_unknown_session(cli_db):
    result = _run(cli_db, "show", "ghost")
    assert result.exit_code == 1
    assert "not found" in result.output and "ghost" in result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)


def test_cli_bad_duration_is_one_red_line(cli_db):
    result = _run(cli_db, "cleanup", "--older-than", "soon")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "cannot read the duration 'soon'" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_cli_cleanup_dry_run_then_yes(cli_db):
    result = _run(cli_db, "cleanup", "--older-than", "30d")
    assert result.exit_code == 0, result.output
    assert "Would remove 1" in result.output and "old" in result.output and "--yes" in result.output
    assert _keys(cli_db) == ["fresh", "old", "u1/mine"]  # nothing deleted
    result = _run(cli_db, "cleanup", "--older-than", "30d", "--yes")
    assert result.exit_code == 0, result.output
    assert "Removed 1" in result.output
    assert _keys(cli_db) == ["fresh", "u1/mine"]
    result = _run(cli_db, "cleanup", "--older-than", "30d", "--yes")
    assert "nothing to remove" in result.output


def test_cli_rm(cli_db):
    result = _run(cli_db, "rm", "fresh", input="n\n")
    assert result.exit_code == 1 and "nothing was deleted" in result.output
    assert "fresh" in _keys(cli_db)
    result = _run(cli_db, "rm", "fresh", input="y\n")
    assert result.exit_code == 0, result.output
    assert "fresh" not in _keys(cli_db)
    result = _run(cli_db, "rm", "mine", "--user", "u1", "--yes")
    assert result.exit_code == 0 and _keys(cli_db) == ["old"]
    result = _run(cli_db, "rm", "mine", "--yes")  # without its user it is another session
    assert result.exit_code == 1 and "not found" in result.output


@pytest.mark.parametrize("name", ["dump.jsonl", "dump"])
def test_cli_export_import(cli_db, tmp_path, name):
    out = tmp_path / name
    result = _run(cli_db, "export", str(out))
    assert result.exit_code == 0, result.output
    assert "Exported 3 session(s)" in result.output
    fresh = tmp_path / "fresh.db"
    result = _run(fresh, "import", str(out))
    assert result.exit_code == 0, result.output
    assert "Imported 3 session(s)" in result.output
    assert _keys(fresh) == ["fresh", "old", "u1/mine"]
    result = _run(fresh, "import", str(out))
    assert "Imported 0" in result.output and "Skipped 3 existing" in result.output and "--overwrite" in result.output
    result = _run(fresh, "import", str(out), "--overwrite")
    assert "Imported 3" in result.output and "Skipped" not in result.output
    _init(fresh)
    assert [m["content"] for m in Session("mine", user_id="u1").get_history()][0] == "hello from mine"
    assert len(Session("mine", user_id="u1").list_checkpoints()) == 1


def test_cli_import_corrupt_is_one_red_line(cli_db, tmp_path):
    out = tmp_path / "dump.jsonl"
    _run(cli_db, "export", str(out))
    _rewrite_line(out, 3, lambda line: "{not json")
    result = _run(tmp_path / "fresh.db", "import", str(out))
    assert result.exit_code == 1 and "CorruptState" in result.output and "line 3" in result.output
    assert "Traceback" not in result.output


def test_cleanup_keeps_a_session_used_after_it_was_listed(tmp_path):
    import asyncio
    import time as _time

    import repertory
    from repertory import Session

    rt = repertory.init(runtime="local", store=f"sqlite:///{tmp_path / 'race.db'}")
    try:
        s = Session(session_id="busy-one")
        s.chat("hello")
        cutoff = _time.time() - 3600  # listed as if older than an hour ago...
        s.chat("used again")          # ...but used since
        gone = asyncio.run(_delete(rt, "busy-one", cutoff))
        assert gone is False and s.exists()
        assert asyncio.run(_delete(rt, "busy-one", _time.time() + 1)) is True
    finally:
        repertory.shutdown()


async def _delete(rt, key, cutoff):
    from repertory.ids import SessionRef

    return await rt.delete(SessionRef.from_key(key), cutoff)
