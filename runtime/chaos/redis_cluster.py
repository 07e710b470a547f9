"""A private Redis Cluster: 3 masters and 3 replicas of Debian's redis-server on free loopback
ports, no persistence, a short node timeout so that a killed master fails over in about a second.

The chaos run's ``redis-failover`` fault and the Redis Cluster tests and benchmark use it; the
shared Redis on 6379 is never touched.
"""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from redis.crc import key_slot

from repertory.errors import RuntimeNotReady

__all__ = ["NODE_TIMEOUT_MS", "PrivateRedisCluster", "start_cluster"]

NODE_TIMEOUT_MS = 1000


def _free_port() -> int:
    """A free port whose cluster bus port (+10000) is free too: Redis needs both, so <= 55535."""
    for _ in range(200):
        port = random.randint(20000, 55535)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
            return port
        except OSError:
            continue
    raise RuntimeNotReady("no free port pair for a Redis Cluster node")


def _command(port: int, *args: str) -> str:
    """One redis-cli command on a node; its reply as text ('' when the node does not answer)."""
    done = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
                          capture_output=True, text=True, timeout=10)
    return done.stdout.strip()


def _poll(check, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeNotReady(f"Redis Cluster: {what} did not happen within {timeout} s")
        time.sleep(0.05)


class PrivateRedisCluster:
    """Six redis-server processes in cluster mode (3 masters with one replica each)."""

    def __init__(self, workdir: Path, size: int = 6) -> None:
        self.workdir = workdir
        self.ports: list[int] = []
        while len(self.ports) < size:
            port = _free_port()
            if not {port, port + 10000} & {q for p in self.ports for q in (p, p + 10000)}:
                self.ports.append(port)
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    def url(self, prefix: str, **params: object) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.ports)
        query = "&".join([f"prefix={prefix}", *(f"{k}={v}" for k, v in params.items())])
        return f"redis+cluster://{hosts}/?{query}"

    def _spawn(self, port: int) -> None:
        node_dir = self.workdir / str(port)
        node_dir.mkdir(parents=True, exist_ok=True)
        self.procs[port] = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--cluster-enabled", "yes", "--cluster-config-file", str(node_dir / "nodes.conf"),
             "--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--dir", str(node_dir), "--daemonize", "no",
             "--repl-diskless-sync-delay", "0",  # a replica syncs at once, not after 5 s
             "--logfile", str(node_dir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def _answers(self, port: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> None:
        for port in self.ports:
            self._spawn(port)
        def up() -> bool:
            for port, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeNotReady(f"redis-server on port {port} exited with {proc.returncode} "
                                       f"(see {self.workdir / str(port) / 'redis.log'})")
            return all(self._answers(p) for p in self.ports)

        _poll(up, "every node answering PING")
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
             "--cluster-replicas", "1", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )
        self.wait_ok()

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every live node says the cluster is ok and sees three masters with a replica each."""
        def ok() -> bool:
            for port in self.live_ports():
                if "cluster_state:ok" not in _command(port, "CLUSTER", "INFO"):
                    return False
                nodes = _command(port, "CLUSTER", "NODES").splitlines()
                flags = [line.split()[2].split(",") for line in nodes if len(line.split()) > 8]
                if sum(1 for f in flags if "master" in f and "fail" not in f and "fail?" not in f) != 3:
                    return False
                # a replica that has not synced yet would not take over from a dead master
                info = _command(port, "INFO", "replication")
                if "role:slave" in info and "master_link_status:up" not in info:
                    return False
            return True

        _poll(ok, "cluster_state:ok on every node", timeout)

    def live_ports(self) -> list[int]:
        return [p for p, proc in self.procs.items() if proc.poll() is None]

    def role(self, port: int) -> str:
        return _command(port, "ROLE").splitlines()[0] if port in self.live_ports() else ""

    def masters(self) -> list[int]:
        return [p for p in self.live_ports() if self.role(p) == "master"]

    def replica_of(self, master: int) -> int:
        for port in self.live_ports():
            lines = _command(port, "ROLE").splitlines()
            if lines and lines[0] == "slave" and int(lines[2]) == master:
                return port
        raise RuntimeNotReady(f"no replica follows the master on port {master}")

    def master_of(self, key: str) -> int:
        """The port of the master that holds ``key``'s slot."""
        return self.masters_of([key])[key]

    def masters_of(self, keys: Iterable[str]) -> dict[str, int]:
        """The port of the master that holds each key's slot: the slots by redis-py's CRC16 (the
        cluster client's own routing), the masters' slot ranges read once."""
        ranges: list[tuple[int, int, int]] = []
        for port in self.masters():
            for line in _command(port, "CLUSTER", "NODES").splitlines():
                fields = line.split()
                if "myself" in fields[2]:
                    for r in fields[8:]:
                        if r[0].isdigit():
                            lo, _, hi = r.partition("-")
                            ranges.append((int(lo), int(hi or lo), port))
        out: dict[str, int] = {}
        for key in keys:
            slot = key_slot(key.encode())
            port = next((p for lo, hi, p in ranges if lo <= slot <= hi), None)
            if port is None:
                raise RuntimeNotReady(f"no master serves slot {slot}")
            out[key] = port
        return out

    def keys_of(self, fragment: str) -> list[bytes]:
        """The names of every key on the masters that contains ``fragment``."""
        found: list[bytes] = []
        for port in self.masters():
            out = _command(port, "--scan", "--pattern", f"*{fragment}*")
            found.extend(line.encode() for line in out.splitlines() if line)
        return found

    def failover(self, master: int) -> int:
        """Graceful: the master's replica takes over (CLUSTER FAILOVER); returns the new master."""
        replica = self.replica_of(master)
        assert _command(replica, "CLUSTER", "FAILOVER") == "OK"
        _poll(lambda: self.role(replica) == "master" and self.role(master) == "slave",
              f"the failover of {master} to {replica}")
        self.wait_ok()
        return replica

    def kill(self, master: int) -> int:
        """SIGKILL a master and wait until its replica is promoted; returns the new master.
        The dead node is started again (empty) and rejoins as a replica, so later tests see six nodes."""
        replica = self.replica_of(master)
        self.procs[master].send_signal(signal.SIGKILL)
        self.procs[master].wait(timeout=10)
        _poll(lambda: self.role(replica) == "master", f"the promotion of {replica} after killing {master}")
        return replica

    def restart(self, port: int) -> None:
        """Start a killed node again from its nodes.conf: it rejoins as a replica of its old slots."""
        self._spawn(port)
        _poll(lambda: self._answers(port), f"node {port} answering PING")
        _poll(lambda: self.role(port) == "slave", f"node {port} rejoining as a replica")
        self.wait_ok()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        self.procs.clear()


def start_cluster(workdir: Path) -> PrivateRedisCluster:
    """A formed cluster in ``workdir``; raises RuntimeNotReady if it cannot start."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        raise RuntimeNotReady("a private Redis Cluster needs redis-server and redis-cli on PATH "
                              "(apt-get install redis-server)")
    cluster = PrivateRedisCluster(workdir)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster
