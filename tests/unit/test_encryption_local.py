"""Encryption at rest through the public API, on the local runtime over SQLite and Redis:
turns, checkpoints, versions, files, exports, shared state, wrong and missing keys, rekey, CLI."""

import asyncio
import json

import pytest
from typer.testing import CliRunner

import repertory
from repertory import Agent, Session, SharedState
from repertory.stores.crypto import envelope_kid, generate_encryption_key
from repertory.stores.factory import open_store

from contract_helpers import STORES, make_store

K1 = generate_encryption_key("k1")
K2 = generate_encryption_key("k2")


@pytest.fixture(params=STORES)
def store(request, tmp_path):
    s = make_store(request, tmp_path)
    yield s
    if repertory.is_initialized():
        repertory.shutdown()


def _restart(store, **settings):
    if repertory.is_initialized():
        repertory.shutdown()
    return repertory.init(runtime="local", store=store.url, **settings)


def _raw(store, key):
    """The session's stored record as the backend holds it (no keys)."""
    async def read():
        s = open_store(store.url)
        try:
            rec = await s.load(key)
            cps = [await s.get_checkpoint(key, i.cp_id) for i in await s.list_checkpoints(key)]
            return rec, [c.data for c in cps]
        finally:
            await s.close()

    return asyncio.run(read())


def test_turns_checkpoints_and_versions_read_back_after_a_restart(store):
    _restart(store, encryption_key=K1)
    s = Session("enc1", agent=Agent("A", instructions="Be brief"))
    s.chat("My name is Alice")
    cp = s.create_checkpoint("named")
    s.save_version("v1")
    s.chat("What is my name?")
    s.user_data["plan"] = "pro"
    rec, cps = _raw(store, "enc1")
    assert {envelope_kid(b) for b in [rec.meta, *rec.messages, *cps]} == {"k1"}
    assert not any(b"Alice" in b or b"pro" in b for b in [rec.meta, *rec.messages, *cps])

    _restart(store, encryption_key=[K2, K1])
    s = Session("enc1")
    assert [m["content"] for m in s.get_history()][0] == "My name is Alice"
    assert len(s.get_history()) == 4 and s.user_data["plan"] == "pro"
    assert s.agent.instructions == "Be brief"
    s.restore_checkpoint(cp)
    assert len(s.get_history()) == 2
    assert [v["description"] for v in s.list_versions()] == ["v1"]


def test_a_wrong_key_fails_the_turn_and_the_record_stays_byte_identical(store):
    _restart(store, encryption_key=K1)
    Session("enc2").chat("hello")
    before = _raw(store, "enc2")
    _restart(store, encryption_key=generate_encryption_key("k1"))
    with pytest.raises(repertory.DecryptionFailed, match="does not decrypt"):
        Session("enc2").chat("overwrite me")
    with pytest.raises(repertory.DecryptionFailed):
        Session("enc2").get_history()
    _restart(store)
    with pytest.raises(repertory.EncryptionKeyMissing, match="REPERTORY_ENCRYPTION_KEY"):
        Session("enc2").chat("no key")
    after = _raw(store, "enc2")
    assert (after[0].revision, after[0].meta, after[0].messages, after[1]) == \
        (before[0].revision, before[0].meta, before[0].messages, before[1])
    _restart(store, encryption_key=K1)
    assert [m["content"] for m in Session("enc2").get_history()][0] == "hello"


def test_plaintext_sessions_migrate_and_rekey_rotates(store):
    _restart(store)
    Session("plain").chat("written before encryption")
    _restart(store, encryption_key=K1)
    s = Session("plain")
    assert s.get_history()[0]["content"] == "written before encryption"
    s.chat("written after")
    rec, _ = _raw(store, "plain")
    assert envelope_kid(rec.messages[0]) is None and envelope_kid(rec.messages[2]) == "k1"
    Session("other").chat("under k1")

    _restart(store, encryption_key=[K1], encryption_required=True)
    with pytest.raises(repertory.EncryptionError, match="encryption_required"):
        Session("plain").get_history()

    _restart(store, encryption_key=[K2, K1])
    done = []
    assert repertory.rekey_sessions(progress=lambda i, n: done.append((i, n))) == 2
    assert done[-1] == (2, 2)
    assert repertory.rekey_sessions() == 0  # already under k2
    for key in ("plain", "other"):
        rec, _ = _raw(store, key)
        assert {envelope_kid(b) for b in [rec.meta, *rec.messages]} == {"k2"}

    _restart(store, encryption_key=K2, encryption_required=True)
    assert [m["content"] for m in Session("plain").get_history()][::2] == ["written before encryption",
                                                                           "written after"]
    Session("plain").chat("and more")


def test_session_files_and_exports_are_encrypted_unless_plaintext(store, tmp_path):
    _restart(store, encryption_key=K1)
    s = Session("enc3", user_id="alice")
    s.chat("My secret plan")
    path = s.save(tmp_path / "enc3.pkl")
    clear = s.save(tmp_path / "enc3-clear.rps", plaintext=True)
    assert b"secret plan" not in open(path, "rb").read() and open(path, "rb").read()[:3] == b"RPE"
    assert b"secret plan" in open(clear, "rb").read()
    assert repertory.export_sessions(tmp_path / "all.jsonl") == 1
    assert repertory.export_sessions(tmp_path / "dir") == 1
    assert repertory.export_sessions(tmp_path / "clear.jsonl", plaintext=True) == 1
    line = json.loads((tmp_path / "all.jsonl").read_text())
    assert set(line) == {"format", "key", "sealed"} and line["key"] == "alice/enc3"
    assert b"secret" not in (tmp_path / "dir" / "alice__enc3.rps").read_bytes()

    _restart(store)  # no key: encrypted files say what to configure; plaintext ones load
    with pytest.raises(repertory.EncryptionKeyMissing):
        Session.load(path, session_id="x1")
    with pytest.raises(repertory.EncryptionKeyMissing):
        repertory.import_sessions(tmp_path / "all.jsonl")
    assert Session.load(clear, session_id="x2").get_history()[0]["content"] == "My secret plan"

    _restart(store, encryption_key=[K2, K1])
    assert Session.load(path, session_id="x3").get_history()[0]["content"] == "My secret plan"
    repertory.Session("enc3", user_id="alice").delete()
    assert repertory.import_sessions(tmp_path / "all.jsonl") == 1
    assert repertory.import_sessions(tmp_path / "dir", overwrite=True) == 1
    assert repertory.import_sessions(tmp_path / "clear.jsonl", overwrite=True) == 1
    assert Session("enc3", user_id="alice").get_history()[0]["content"] == "My secret plan"


def test_shared_state_is_encrypted(store):
    _restart(store, encryption_key=K1)
    SharedState("board").set("plan", "the secret plan")
    rec, _ = _raw(store, "~shared/board")
    assert envelope_kid(rec.meta) == "k1" and b"secret" not in rec.meta
    _restart(store, encryption_key=K1)
    assert SharedState("board").get("plan") == "the secret plan"


def test_cli_keys_new_and_sessions_rekey(store, monkeypatch, tmp_path):
    from repertory.cli import app

    runner = CliRunner()
    out = runner.invoke(app, ["keys", "new", "--kid", "k9"])
    assert out.exit_code == 0, out.output
    new = out.stdout.strip().splitlines()[0]
    assert new.startswith("k9:")
    _restart(store, encryption_key=K1)
    Session("enc4").chat("hello")
    repertory.shutdown()
    monkeypatch.setenv("REPERTORY_ENCRYPTION_KEY", f"{new},{K1}")
    out = runner.invoke(app, ["sessions", "rekey", "--store", store.url, "--local"])
    assert out.exit_code == 0, out.output
    assert "Re-encrypted 1 session" in out.output
    assert envelope_kid(_raw(store, "enc4")[0].meta) == "k9"
    for flags, sealed in (([], True), (["--plaintext"], False)):
        out_file = tmp_path / f"export{len(flags)}.jsonl"
        out = runner.invoke(app, ["sessions", "export", str(out_file), *flags, "--store", store.url, "--local"])
        assert out.exit_code == 0, out.output
        assert ('"sealed"' in out_file.read_text()) is sealed
    monkeypatch.setenv("REPERTORY_ENCRYPTION_KEY", "k9:bad")
    out = runner.invoke(app, ["sessions", "ls", "--store", store.url, "--local"])
    assert out.exit_code == 1 and "k9" in out.output


def test_the_readme_key_line_runs_as_written(tmp_path):
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    from repertory.stores.crypto import KeyRing

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    lines = [line for block in re.findall(r"```bash\n(.*?)```", readme, re.S) for line in block.splitlines()
             if "repertory keys new" in line]
    assert lines
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    for line in lines:
        out = subprocess.run(["bash", "-c", f'{line}\nprintf %s "$REPERTORY_ENCRYPTION_KEY"'], env=env,
                             cwd=tmp_path, capture_output=True, text=True, check=True)
        assert KeyRing(out.stdout).current  # a valid key reached the environment


def test_keys_never_reach_logs_or_reprs(store, capsys, caplog, tmp_path):
    import logging

    caplog.set_level(logging.DEBUG)
    rt = _restart(store, encryption_key=[K2, K1])
    Session("enc5").chat("hello")
    repertory.rekey_sessions()
    repertory.export_sessions(tmp_path / "x.jsonl")
    with pytest.raises(repertory.DecryptionFailed) as err:
        _restart(store, encryption_key=generate_encryption_key("k2"))
        Session("enc5").get_history()
    seen = capsys.readouterr().out + capsys.readouterr().err + caplog.text + repr(rt.settings) + str(err.value)
    for key in (K1, K2):
        assert key.split(":")[1] not in seen
