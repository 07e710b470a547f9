"""A throw-away redis-server for tests that stop, hang or flush a server (never 6379)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    """A throw-away redis-server on its own port (no persistence), started and stopped at will."""

    def __init__(self, workdir: Path, *, persistent: bool = False, args: Sequence[str] = ()) -> None:
        self.persistent = persistent  # append-only file, fsync on every write: survives restarts
        self.args = list(args)  # more redis-server options, e.g. ("--maxmemory", "2mb")
        self.port = _free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes" if self.persistent else "no", "--appendfsync", "always",
             "--daemonize", "no", "--dir", str(self.workdir), *self.args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server on port {self.port} exited with {self.proc.returncode}")
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not answer within 10 s")

    def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)  # in case a test left it stopped
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


@pytest.fixture
def private_redis(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed: run .ci/ensure-redis (it installs Debian's redis-server)")
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


TEST_DB_URL = "redis://127.0.0.1:6379/15"


async def drop_redis_keys(prefix: str, url: str = TEST_DB_URL) -> None:
    """Remove every key under ``prefix`` (and nothing else) from the test database."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        names = [n async for n in client.scan_iter(match=f"{prefix}:*", count=1000)]
        for i in range(0, len(names), 500):
            await client.unlink(*names[i:i + 500])
    finally:
        await client.aclose()
