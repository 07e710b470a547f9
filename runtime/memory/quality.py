"""How good a candidate memory is: relevance, recency and importance, weighted.

A *memory item* is a plain dict: ``content``, ``timestamp`` (seconds since the epoch),
``relevance`` and ``importance`` (0..1, from the extractor or the caller), ``kind`` and
``scope``. A scorer is any function of such an item returning a number; higher is better.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from repertory.errors import MemoryConfigError

__all__ = ["MemoryItem", "QualityFilter", "Scorer", "recency", "unit"]

MemoryItem = Mapping[str, Any]
Scorer = Callable[[MemoryItem], float]

_DAY = 86400.0


def recency(timestamp: float, half_life: float = 30 * _DAY, now: float | None = None) -> float:
    """1.0 for now, 0.5 one ``half_life`` ago, halving again every ``half_life``."""
    age = max((time.time() if now is None else now) - float(timestamp), 0.0)
    return math.pow(0.5, age / half_life)


@dataclass(frozen=True, slots=True)
class QualityFilter:
    """The reusable scorer: ``relevance * w_r + recency * w_t + importance * w_i``.

    The default weights are the seed page's (0.4, 0.3, 0.3); missing ``relevance`` and
    ``importance`` count as 0.5, as on the page. ``half_life`` (seconds) sets how fast
    recency decays. Call it on a memory item, or give it to ``Memory(scorer=...)`` /
    ``memory.set_quality_scorer``. It is plain data, so it travels to agent actors as such.
    """

    relevance: float = 0.4
    recency: float = 0.3
    importance: float = 0.3
    half_life: float = 30 * _DAY

    def __post_init__(self) -> None:
        for name in ("relevance", "recency", "importance"):
            w = getattr(self, name)
            if not isinstance(w, (int, float)) or isinstance(w, bool) or not 0 <= w < math.inf:
                raise MemoryConfigError(f"QualityFilter weight {name!r} must be a number >= 0, got {w!r}")
        if not isinstance(self.half_life, (int, float)) or not 0 < self.half_life < math.inf:
            raise MemoryConfigError(f"QualityFilter half_life must be a positive number of seconds, "
                                    f"got {self.half_life!r}")

    def __call__(self, item: MemoryItem) -> float:
        return (unit(item.get("relevance", 0.5)) * self.relevance
                + recency(item.get("timestamp", time.time()), self.half_life) * self.recency
                + unit(item.get("importance", 0.5)) * self.importance)

    def to_dict(self) -> dict[str, float]:
        """The weights as plain data."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QualityFilter:
        return cls(**data)


def unit(x: Any) -> float:
    """``x`` as a number in 0..1 (0.5 if it is not a number)."""
    try:
        return min(max(float(x), 0.0), 1.0)
    except (TypeError, ValueError):
        return 0.5
