"""``--ray-serve``: the same app as a Ray Serve deployment of two replicas over the driver's
runtime; the replicas read their secrets from files, never from the shipped config."""

from __future__ import annotations

import os
import socket
import time
import uuid

import httpx
import pytest

import repertory
from repertory import InvalidInput, Session, tokens
from repertory.server import ServerConfig
from repertory.server.runner import serve_ray
from repertory.tokens import Keyring

pytestmark = pytest.mark.ray

SECRET = "serve-secret-" + "q" * 24


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def deployment(ray_cluster, tmp_path):
    from ray import serve

    rt = repertory.init(store=f"sqlite:///{tmp_path / 'state.db'}", num_hosts=2,
                        namespace=f"rs{os.getpid()}-{uuid.uuid4().hex[:8]}")
    keys, admin = tmp_path / "keys", tmp_path / "admin"
    keys.write_text(f"k1:{SECRET}\n")
    admin.write_text("admin-" + "a" * 20)
    for f in (keys, admin):
        f.chmod(0o600)
    config = ServerConfig(host="127.0.0.1", port=_free_port(), secret_keys_file=str(keys),
                          admin_key_file=str(admin),
                          init={"store": rt.settings.store, "namespace": rt.settings.namespace})
    try:
        url = serve_ray(config, replicas=2, name=f"repertory-{uuid.uuid4().hex[:6]}")
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/ready", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the Ray Serve deployment did not become ready"
            time.sleep(0.5)
        yield url
    finally:
        serve.shutdown()
        repertory.shutdown()


def test_two_replicas_serve_one_runtime(deployment):
    from ray import serve

    apps = serve.status().applications
    replicas = [d.replica_states.get("RUNNING", 0) for a in apps.values() for d in a.deployments.values()]
    assert replicas == [2]
    session_id = f"rs-{uuid.uuid4().hex[:8]}"
    s = Session(agent_url=deployment, session_id=session_id, token=tokens.issue(session_id, secret=Keyring({"k1": SECRET})))
    replies = [s.chat(f"message {i}") for i in range(6)]  # spread over both replicas
    assert [m["content"] for m in s.get_history()[1::2]] == replies
    assert "".join(s.stream("and a stream")) == s.get_history()[-1]["content"]
    assert Session(session_id).get_history()[-1]["content"] == s.get_history()[-1]["content"]  # the driver's runtime
    assert httpx.get(f"{deployment}/sessions/{session_id}/history", timeout=10).status_code == 401


def test_secret_values_are_not_shipped_to_replicas():
    with pytest.raises(InvalidInput, match="environment or from files"):
        serve_ray(ServerConfig(secret_keys="x" * 32), replicas=2)
