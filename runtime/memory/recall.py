"""The memory side of an agent's turn, run in the process that runs the agent.

Before the model call: recall the scope's memories most relevant to the user's message and
render them for the system prompt. Meanwhile, extract candidate facts from the message (the
agent's model through litellm, or the deterministic extractor for the offline models). After
the reply: score each candidate, keep those the threshold accepts, and store them (evicting the
lowest-scored past ``max_memories``). Nothing is stored for a turn that failed.

Stores are opened per database file (or chromadb folder) through ``stores``, which the agent
core gets from its runtime: in-process by default, a memory actor per chromadb folder on Ray
(one process per folder). Every SQLite and chromadb call runs on its store's thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog

from repertory.errors import ModelError
from repertory.memory.extract import Candidate, extract_facts, extract_with_model
from repertory.memory.quality import QualityFilter, Scorer
from repertory.memory.settings import MemorySettings
from repertory.memory.stores import MemoryStores

if TYPE_CHECKING:
    from repertory.memory.stores import MemoryStore

__all__ = ["AgentMemory", "render_memories"]

log = structlog.get_logger("repertory.memory")


def render_memories(memories: list[dict[str, Any]], scope: str) -> str | None:
    """The system-prompt paragraph for recalled ``memories`` (None when there are none)."""
    if not memories:
        return None
    whose = "this user" if scope.startswith("user:") else "the user of this conversation"
    lines = []
    for m in memories:
        text = m["content"].strip()
        lines.append(f"- {text}" if text.endswith((".", "!", "?")) else f"- {text}.")
    return f"What you remember about {whose} from earlier conversations:\n" + "\n".join(lines)


class AgentMemory:
    """Recall and remember for one agent; see the module docstring.

    ``settings`` is the agent's own :class:`~repertory.Memory` (its scorer function is used
    when it has one); what else a turn needs travels with the turn as plain data (``spec``:
    :func:`repertory.memory.settings.turn_memory`). ``client`` is the agent's model client;
    with ``use_model`` False the deterministic extractor runs instead. ``stores`` opens the
    store of a spec (default: a :class:`~repertory.memory.stores.MemoryStores` of its own).
    """

    def __init__(self, settings: MemorySettings | None, client: Any, model: str,
                 llm_options: dict[str, Any], *, use_model: bool,
                 stores: Callable[[dict[str, Any]], MemoryStore] | None = None) -> None:
        self.settings = settings
        self.client = client
        self.model = model
        self.llm_options = llm_options
        self.use_model = use_model
        self._own = MemoryStores() if stores is None else None
        self.store: Callable[[dict[str, Any]], MemoryStore] = stores or self._own

    def _scorer(self, spec: dict[str, Any]) -> Scorer:
        if self.settings is not None and not isinstance(self.settings.scorer, QualityFilter):
            return self.settings.scorer
        return QualityFilter.from_dict(spec["filter"]) if spec.get("filter") else QualityFilter()

    async def recall(self, spec: dict[str, Any], query: str) -> str | None:
        """The prompt paragraph of the scope's memories for ``query``."""
        hits = await self.store(spec).recall(spec["scope"], query, spec.get("recall_limit") or 5)
        log.debug("memories_recalled", scope=spec["scope"], n=len(hits))
        return render_memories(hits, spec["scope"])

    async def extract(self, text: str) -> tuple[list[Candidate], dict[str, int]]:
        """Candidate facts in the user's ``text`` and the usage of the model call (if any)."""
        if not self.use_model:
            return extract_facts(text), {}
        try:
            return await extract_with_model(self.client, self.model, text, self.llm_options)
        except ModelError as exc:  # the turn has its answer; this message's facts come from patterns
            log.warning("memory_extraction_failed", model=self.model, error=str(exc))
            return extract_facts(text), {}

    async def remember(self, spec: dict[str, Any], candidates: list[Candidate]) -> int:
        """Score and store ``candidates`` in the spec's scope; returns how many were kept."""
        scorer = self._scorer(spec)
        threshold = spec.get("quality_threshold")
        cap = spec.get("max_memories")
        kept: list[tuple[dict[str, Any], float]] = []
        now = time.time()
        for c in candidates:
            item = {**c, "timestamp": now, "scope": spec["scope"], "session_id": spec.get("session_id")}
            try:
                score = float(scorer(item))
            except Exception as exc:  # the user's scorer: its bug must not lose the turn
                log.error("memory_scorer_failed", error=f"{type(exc).__name__}: {exc}", content=c["content"][:80])
                continue
            if threshold is not None and not score >= threshold:
                log.debug("memory_rejected", score=round(score, 3), threshold=threshold, content=c["content"][:80])
                continue
            kept.append((item, score))
        await self.store(spec).add_many(spec["scope"], kept, max_memories=cap,
                                                   rescore=scorer if cap else None)
        if candidates:
            log.debug("memories_stored", scope=spec["scope"], kept=len(kept), candidates=len(candidates))
        return len(kept)

    def start_extraction(self, text: str) -> asyncio.Task:
        """:meth:`extract` as a task, to overlap the turn's own model call."""
        return asyncio.get_running_loop().create_task(self.extract(text))

    def close(self) -> None:
        if self._own is not None:  # stores given by the runtime are the runtime's to close
            self._own.close()
