"""What a remote client had acknowledged reads back through a new server over a restarted runtime."""

from __future__ import annotations

import os
import uuid

import pytest

import repertory
from contract_helpers import STORES, make_store
from repertory import Session, tokens
from repertory.server import ServerConfig, serve_in_thread
from repertory.tokens import Keyring

pytestmark = pytest.mark.ray

RING = Keyring({"k1": "restart-secret-" + "r" * 24})


@pytest.fixture(params=STORES)
def store(request, tmp_path):
    return make_store(request, tmp_path)


def test_acknowledged_values_read_back_after_a_restart(store, ray_cluster):
    namespace = f"restart{os.getpid()}-{uuid.uuid4().hex[:8]}"
    token = tokens.issue("restart-1", "u", secret=RING)
    contents = None
    for round_ in range(2):
        repertory.init(store=store.url, num_hosts=2, namespace=namespace)
        try:
            with serve_in_thread(ServerConfig(port=0, secret_keys=RING)) as h:
                s = Session(agent_url=h.url, session_id="restart-1", token=token)
                if round_ == 0:
                    s.chat("My name is Zed")
                    s.update_user_data(plan="pro")
                    s.create_checkpoint("cp")
                    s.save_version("v")
                    contents = (s.get_history(), s.list_checkpoints(), s.list_versions())
                else:
                    assert (s.get_history(), s.list_checkpoints(), s.list_versions()) == contents
                    assert s.info()["user_data"] == {"plan": "pro"}
                    assert "Zed" in s.chat("What's my name?")
        finally:
            repertory.shutdown()
