"""Stable placement of sessions on hosts: jump consistent hash of the session key."""

from __future__ import annotations

import hashlib

__all__ = ["host_index", "jump_hash", "spread"]


def jump_hash(key: int, buckets: int) -> int:
    """Lamping & Veach's jump consistent hash: moves only 1/n of keys when a bucket is added."""
    if buckets <= 0:
        raise ValueError("buckets must be positive")
    b, j = -1, 0
    key &= 0xFFFFFFFFFFFFFFFF
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) & 0xFFFFFFFFFFFFFFFF
        j = int((b + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return b


def host_index(key: str, buckets: int) -> int:
    """The host (0..buckets-1) that owns session ``key``, the same in every process."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return jump_hash(int.from_bytes(digest, "big"), buckets)


def spread(nodes: list[tuple[str, float]], n: int) -> list[str]:
    """The node of each of ``n`` hosts (or replicas) over ``nodes`` (id, CPUs): in proportion
    to the nodes' CPUs (D'Hondt's apportionment, once every node has one), the same in every
    process for the same nodes (ties broken by node id)."""
    if not nodes:
        raise ValueError("no nodes to place on")
    weights = {node: max(cpus, 1.0) for node, cpus in nodes}
    given = dict.fromkeys(weights, 0)
    out = []
    for _ in range(n):
        # Every node first, then by D'Hondt's quotient.
        node = max(sorted(weights), key=lambda k: (given[k] == 0, weights[k] / (given[k] + 1)))
        given[node] += 1
        out.append(node)
    return out
