"""How many hosts a runtime routes over, and where new ones go, as the cluster's nodes change.

The host count is derived from the cluster's node table (Ray's GCS: one table per cluster,
read by every driver), not agreed through a record of its own: every driver of one store and
namespace on one cluster computes the same count from the same live nodes, so drivers agree
as soon as each has looked (every ``period`` seconds, on its call path). While they disagree
a session may be routed to two hosts; the activation lease (:mod:`repertory.host.activation`)
keeps it active on one. With ``num_hosts`` configured the count is fixed and never checked.

Jump consistent hashing (:mod:`repertory.host.routing`) moves only the sessions of the hosts
added (growth) or of the highest-numbered hosts removed (shrink); a host whose node left keeps
its index and is started again on a live node (``RayRuntime._revive_host``).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from repertory.host.routing import spread

__all__ = ["HostSet"]

CHECK_EVERY = 2.0  # seconds between two looks at the node table on a driver's call path


class HostSet:
    """The host count of one runtime and the placement of the hosts it adds."""

    def __init__(self, fixed: int | None = None, *, period: float = CHECK_EVERY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.fixed = fixed or None  # 0 or None: follow the nodes
        self.period = period
        self._clock = clock
        self._next = clock() + period

    def size(self, nodes: list[tuple[str, float]]) -> int:
        """The host count for these live nodes (id, CPUs): one per CPU, at least one."""
        return self.fixed or max(sum(int(cpus) for _, cpus in nodes), 1)

    def due(self) -> bool:
        """True once per ``period`` (never with a fixed count): time to look at the nodes."""
        if self.fixed is not None:
            return False
        now = self._clock()
        if now < self._next:
            return False
        self._next = now + self.period
        return True

    @staticmethod
    def placement(nodes: list[tuple[str, float]], placed: list[str], n: int) -> list[str]:
        """The nodes of hosts ``len(placed)``..``n-1``: those furthest below their share (by
        CPUs, as :func:`spread`) given where the first hosts already are."""
        target = Counter(spread(nodes, n))
        have = Counter(node for node in placed[:n] if node in target)
        out = []
        for _ in range(len(placed), n):
            node = max(sorted(target), key=lambda k: target[k] - have[k])
            have[node] += 1
            out.append(node)
        return out
