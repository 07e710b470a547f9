"""``repertory serve``: refuses to start insecurely; serves sessions with the agents of a file."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from repertory import Session, tokens
from repertory.cli import app
from repertory.logs import bound_request_id

SECRET = "cli-secret-" + "c" * 24


def test_refuses_no_keys_and_open_access_off_loopback(monkeypatch):
    monkeypatch.delenv("REPERTORY_SECRET_KEYS", raising=False)
    monkeypatch.delenv("REPERTORY_SECRET_KEYS_FILE", raising=False)
    result = CliRunner().invoke(app, ["serve", "--local"])
    assert result.exit_code == 1 and "REPERTORY_SECRET_KEYS" in result.output
    result = CliRunner().invoke(app, ["serve", "--local", "--host", "0.0.0.0", "--insecure-no-auth"])
    assert result.exit_code == 1 and "refused" in result.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serves_agents_from_a_file(tmp_path: Path):
    (tmp_path / "agents.yaml").write_text("poet:\n  instructions: You write poems.\n"
                                          "critic:\n  instructions: You judge poems.\n")
    port = _free_port()
    env = {**os.environ, "REPERTORY_SECRET_KEYS": f"k1:{SECRET}", "REPERTORY_HOME": str(tmp_path),
           "REPERTORY_LOG_LEVEL": "DEBUG"}
    proc = subprocess.Popen([sys.executable, "-m", "repertory.cli.app", "serve", "--local", "--port", str(port),
                             "--agents", str(tmp_path / "agents.yaml")], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/agent"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/ready", timeout=2).json()["agents"] == ["critic", "poet"]:
                    break
            except (httpx.TransportError, KeyError, ValueError):
                pass
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.2)
        token = tokens.issue("cli-1", "u1", secret={"k1": SECRET})
        s = Session(agent_url=url, session_id="cli-1", token=token, agent="critic")
        s.chat("Judge this")
        r = httpx.get(f"{url}/sessions/cli-1/history", headers={"Authorization": f"Bearer {token}",
                                                                "X-Request-ID": "req-abc-1"})
        assert r.status_code == 200 and r.headers["x-request-id"] == "req-abc-1"
        r = httpx.post(f"{url}/sessions/cli-1/chat", json={"message": "Judge this too", "agent": "critic"},
                       headers={"Authorization": f"Bearer {token}", "X-Request-ID": "req-turn-2"})
        assert r.status_code == 200 and r.headers["x-request-id"] == "req-turn-2"
        with bound_request_id("req-client-3"):  # a remote handle sends the id bound around it
            s.chat("And this one")
        assert s.get_state()["agent"]["name"] == "critic"
        Session(agent_url=url, session_id="cli-1", token=token).chat("Write one")  # the first agent: poet
        assert s.get_state()["agent"]["name"] == "poet"
    finally:
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == 0, out
    assert SECRET not in out and token not in out and token.split(".")[-1] not in out
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    access = [x for x in lines if x.get("event") == "http_request"]
    assert {"request_id": "req-abc-1", "method": "GET", "path": "/agent/sessions/cli-1/history", "status": 200}.items() \
        <= next(x for x in access if x["request_id"] == "req-abc-1").items()
    assert all(len(x["request_id"]) >= 8 for x in access)
    # The request id crosses to the host: the turn's own log lines carry it.
    committed = [x for x in lines if x.get("event") == "turn_committed" and x.get("request_id") == "req-turn-2"]
    assert len(committed) == 1 and committed[0]["session"].endswith("cli-1"), [x for x in lines if "turn" in x.get("event", "")]
    assert [x["path"] for x in access if x["request_id"] == "req-client-3"] == ["/agent/sessions/cli-1/chat"]
    assert [x["event"] for x in lines if x.get("request_id") == "req-client-3" and x.get("event") == "turn_committed"] \
        == ["turn_committed"]
