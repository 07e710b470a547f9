"""Every Ray actor name repertory uses, in one place, scoped to the store they serve.

Two applications on one cluster share actors only when they name the same store in the same
namespace: the scope is a digest of the store URL, so a driver on ``a.db`` never reaches the
hosts of a driver on ``b.db``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = ["ActorNames"]


def _digest(text: str, size: int = 6) -> str:
    return hashlib.blake2b(text.encode(), digest_size=size).hexdigest()


@dataclass(slots=True, frozen=True)
class ActorNames:
    """The names (and namespace) of one runtime's actors."""

    namespace: str
    scope: str

    @classmethod
    def for_store(cls, namespace: str, store_url: str) -> ActorNames:
        return cls(namespace, _digest(store_url))

    def host(self, index: int) -> str:
        return f"host-{self.scope}-{index}"

    def dedicated(self, key: str) -> str:
        return f"session-{self.scope}-{_digest(key, 10)}"

    def agent(self, agent_key: str, index: int) -> str:
        return f"agent-{self.scope}:{agent_key}:{index}"

    def shared_state(self, state_id: str) -> str:
        return f"shared-{self.scope}:{state_id}"

    def store(self) -> str:
        return f"store-{self.scope}"

    def memory(self, store_key: str) -> str:
        return f"memory-{self.scope}:{_digest(store_key, 10)}"
