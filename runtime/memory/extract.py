"""What to remember from a user's message: facts and preferences, as memory candidates.

Two extractors give the same shape, a list of ``{"content", "kind", "importance",
"relevance"}``:

* :func:`extract_facts` is deterministic (a few sentence patterns: preferences, favourites,
  names, likes, "my X is Y", where the user lives or works). The offline demo model and the
  null benchmark model use it, and it is the fallback when a model's answer cannot be read.
* :func:`extract_with_model` asks the agent's own model (through its litellm client) with a
  short prompt and reads the JSON array it answers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, Protocol

import structlog

from repertory.memory.quality import unit

__all__ = ["EXTRACTION_PROMPT", "Candidate", "extract_facts", "extract_with_model", "parse_model_facts"]

log = structlog.get_logger("repertory.memory")

Candidate = dict[str, Any]

EXTRACTION_PROMPT = (
    "Extract durable facts and preferences about the user from the user's message, for a "
    "long-term memory. Reply with only a JSON array. Each item is an object: "
    '{"fact": "<one short sentence in the third person, starting with \'The user\'>", '
    '"importance": <0 to 1>, "relevance": <0 to 1>}. '
    "Reply [] when the message holds nothing worth remembering (questions, greetings, small talk)."
)
_MAX_FACT = 300

_SENTENCES = re.compile(r"(?<=[.!?;])\s+|\n+")
_TAIL = " \t.,;:!?\"'"
_X = r"(?P<x>[^.!?;\n]{1,120})"


def _third_person(phrase: str) -> str:
    """``run at 7`` -> ``runs at 7``: the first word as a verb after "the user"."""
    verb, _, rest = phrase.partition(" ")
    low = verb.lower()
    if low in ("have", "be", "do", "go"):
        verb = {"have": "has", "be": "is", "do": "does", "go": "goes"}[low]
    elif low.endswith(("s", "sh", "ch", "x", "z", "o")):
        verb += "es"
    elif low.endswith("y") and len(low) > 1 and low[-2] not in "aeiou":
        verb = verb[:-1] + "ies"
    else:
        verb += "s"
    return f"{verb} {rest}" if rest else verb


def _sub(m: re.Match, fmt: str) -> str:
    return fmt.format(**{k: v.strip(_TAIL) for k, v in m.groupdict().items() if v})


# (pattern, sentence template, kind, importance, relevance); the first pattern that matches a
# sentence wins, so specific ones come first.
_PATTERNS: list[tuple[re.Pattern, Callable[[re.Match], str], str, float, float]] = [
    (re.compile(r"^(?:i\s+(?:really\s+)?prefer)\s+(?P<x>.{1,60}?)\s+(?P<how>over|to|rather than)\s+(?P<y>.{1,60})$", re.I),
     lambda m: _sub(m, "The user prefers {x} {how} {y}."), "preference", 0.8, 0.8),
    (re.compile(r"^i\s+(?:really\s+)?prefer\s+" + _X + "$", re.I),
     lambda m: _sub(m, "The user prefers {x}."), "preference", 0.8, 0.8),
    (re.compile(r"^my\s+favou?rite\s+(?P<what>[\w\s-]{1,40}?)\s+(?:is|are)\s+" + _X + "$", re.I),
     lambda m: _sub(m, "The user's favourite {what} is {x}."), "preference", 0.8, 0.8),
    (re.compile(r"^(?:my\s+name\s+is|i\s*'?\s*a?m\s+called|call\s+me)\s+" + _X + "$", re.I),
     lambda m: _sub(m, "The user's name is {x}."), "fact", 0.9, 0.9),
    (re.compile(r"^i\s+(?:really\s+)?(?P<verb>like|love|enjoy|hate|dislike)\s+" + _X + "$", re.I),
     lambda m: _sub(m, "The user {verb}s {x}.").replace("dislikes", "dislikes"), "preference", 0.7, 0.7),
    (re.compile(r"^i\s+(?P<verb>live|work|study)\s+(?P<prep>in|at|for|as|on)\s+" + _X + "$", re.I),
     lambda m: _sub(m, "The user {verb}s {prep} {x}."), "fact", 0.7, 0.7),
    (re.compile(r"^i\s*(?:'m|\s+am)\s+from\s+" + _X + "$", re.I),
     lambda m: _sub(m, "The user is from {x}."), "fact", 0.7, 0.7),
    (re.compile(r"^i\s*(?:'m|\s+am)\s+(?P<a>an?)\s+" + _X + "$", re.I),
     lambda m: _sub(m, "The user is {a} {x}."), "fact", 0.6, 0.6),
    (re.compile(r"^my\s+(?P<what>[\w\s'-]{1,40}?)\s+(?:is|are)\s+" + _X + "$", re.I),
     lambda m: _sub(m, "The user's {what} is {x}."), "fact", 0.6, 0.6),
    (re.compile(r"^i\s+(?P<adv>always|usually|never|often)\s+" + _X + "$", re.I),
     lambda m: f"The user {m['adv'].lower()} {_third_person(m['x'].strip(_TAIL))}.", "habit", 0.6, 0.6),
]


def extract_facts(text: str) -> list[Candidate]:
    """Facts and preferences stated in ``text`` (questions are skipped), deterministically."""
    out: list[Candidate] = []
    seen: set[str] = set()
    for sentence in _SENTENCES.split(text or ""):
        s = sentence.strip().rstrip(_TAIL).strip()
        if not s or sentence.strip().endswith("?"):
            continue
        for pattern, render, kind, importance, relevance in _PATTERNS:
            m = pattern.match(s)
            if m:
                fact = render(m)
                if fact.lower() not in seen:
                    seen.add(fact.lower())
                    out.append({"content": fact, "kind": kind, "importance": importance, "relevance": relevance})
                break
    return out


class _Completer(Protocol):  # the agent's model client (repertory.agents.model_client.ModelClient)
    async def complete(self, model: str, messages: list[dict], **options: Any) -> Any: ...


def parse_model_facts(text: str) -> list[Candidate] | None:
    """The candidates in a model's answer to :data:`EXTRACTION_PROMPT`; None if unreadable."""
    start, end = text.find("["), text.rfind("]")
    if start < 0 or end < start:
        return None
    try:
        items = json.loads(text[start:end + 1])
    except ValueError:
        return None
    if not isinstance(items, list):
        return None
    out = []
    for item in items:
        if isinstance(item, str):
            item = {"fact": item}
        if not isinstance(item, dict) or not isinstance(item.get("fact"), str) or not item["fact"].strip():
            continue
        out.append({"content": item["fact"].strip()[:_MAX_FACT], "kind": str(item.get("kind") or "fact")[:32],
                    "importance": unit(item.get("importance")), "relevance": unit(item.get("relevance"))})
    return out


async def extract_with_model(client: _Completer, model: str, text: str,
                             options: dict[str, Any]) -> tuple[list[Candidate], dict[str, int]]:
    """Ask ``model`` for the facts in ``text``; returns the candidates and the call's usage.

    An answer that is not a JSON array falls back to :func:`extract_facts` (logged)."""
    reply = await client.complete(model, [{"role": "system", "content": EXTRACTION_PROMPT},
                                          {"role": "user", "content": text}], **options)
    answer = reply.message.get("content") or ""
    facts = parse_model_facts(answer)
    if facts is None:
        log.warning("memory_extraction_unreadable", model=model, answer=answer[:200])
        facts = extract_facts(text)
    return facts, dict(reply.usage)

