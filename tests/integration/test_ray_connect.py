"""Issue 16 item 4: the embedded default never joins a cluster it was not asked to join, and
a cluster that was asked for but does not answer fails fast with a typed error.

Each case runs ``repertory.init()`` in a subprocess with its own ``RAY_TMPDIR`` (where Ray
keeps the last cluster's address), so nothing here touches this machine's Ray files or the
test session's Ray. ("auto" is not tested here: with exactly one Ray running on the machine,
Ray's "auto" joins it whatever the file says, and the test session's Ray is running.)
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray

SCRIPT = r"""
import sys, time
import repertory
from repertory import Agent, Session
from repertory.errors import RuntimeNotReady

address = sys.argv[1] or None
t0 = time.monotonic()
try:
    repertory.init(address=address, connect_timeout=3)
except RuntimeNotReady as exc:
    print("NOT_READY", round(time.monotonic() - t0, 1), exc)
    sys.exit(0)
s = Session("connect-check", agent=Agent("Demo", model=repertory.DEMO_MODEL))
print("REPLY", s.chat("Hello there."))
repertory.shutdown()
"""


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def ray_tmp():
    # Short: Ray's socket paths under it must stay within the 107-byte limit.
    path = Path(tempfile.mkdtemp(prefix="rpc-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _init(ray_tmp: Path, tmp_path: Path, address: str = "", **env: str) -> tuple[str, float]:
    environ = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    environ.update(RAY_TMPDIR=str(ray_tmp), REPERTORY_HOME=str(tmp_path / "home"), **env)
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", SCRIPT, address], env=environ, cwd=tmp_path,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, time.monotonic() - t0


def test_default_init_starts_a_private_instance_despite_a_dead_last_cluster(ray_tmp, tmp_path):
    # `ray start` leaves the address of the last cluster here; that cluster died uncleanly.
    (ray_tmp / "ray_current_cluster").write_text(f"127.0.0.1:{_closed_port()}")
    out, _ = _init(ray_tmp, tmp_path)
    assert "REPLY" in out and "Hello there." in out, out


@pytest.mark.parametrize("how", ["argument", "RAY_ADDRESS"])
def test_an_address_that_does_not_answer_fails_fast_with_a_typed_error(ray_tmp, tmp_path, how):
    address = f"127.0.0.1:{_closed_port()}"
    if how == "argument":
        out, elapsed = _init(ray_tmp, tmp_path, address)
    else:
        out, elapsed = _init(ray_tmp, tmp_path, RAY_ADDRESS=address)
    assert out.startswith("NOT_READY"), out
    assert address in out and "private local instance" in out
    assert elapsed < 60  # ray.init alone retried a dead GCS for more than five minutes


def test_ray_client_address_that_does_not_answer_fails_fast(ray_tmp, tmp_path):
    out, elapsed = _init(ray_tmp, tmp_path, f"ray://127.0.0.1:{_closed_port()}")
    assert out.startswith("NOT_READY"), out
    assert elapsed < 60
