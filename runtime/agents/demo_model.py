"""The offline demo model, ``repertory/demo``: deterministic, labelled, not a language model.

It answers from the prompt it receives and nothing else. A question gets back the earlier
statements in the prompt that share the most words with it, quoted verbatim; a statement is
acknowledged. So ``chat("My name is Alice")`` then ``chat("What's my name?")`` answers with
Alice only if the first message reached the second prompt, which is what tests check.
Token usage is counted in words, the way a real provider reports it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

__all__ = ["DEMO_CONTEXT_WORDS", "DEMO_LABEL", "DEMO_MODEL", "SUMMARY_MARKER", "DemoAnswer", "demo_answer",
           "keywords", "word_count"]

DEMO_MODEL = "repertory/demo"
DEMO_LABEL = "[demo model]"
DEMO_CONTEXT_WORDS = 8192  # its declared context size, in words (its token unit)
# How a summary request starts (agents.window): the demo model answers it with a summary.
SUMMARY_MARKER = "Summarise the conversation below for your own later reference"
_AT_MOST = re.compile(r"at most (\d+) words")

_WORD = re.compile(r"[a-z0-9]+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_QUESTION_WORDS = {"what", "who", "where", "when", "why", "how", "which", "do", "does", "did",
                   "is", "are", "can", "could", "should", "would", "will"}
_STOP = {
    "a", "an", "the", "is", "are", "was", "were", "be", "am", "i", "me", "my", "mine", "you",
    "your", "we", "our", "us", "it", "its", "s", "what", "whats", "who", "where", "when", "why",
    "how", "which", "do", "does", "did", "to", "of", "in", "on", "at", "for", "and", "or",
    "that", "this", "there", "again", "please", "tell", "know", "remember", "about", "with",
    "can", "could", "would", "should", "will", "have", "has", "had", "so", "just", "as", "by",
}
# A few words that mean the same for the purpose of recall.
_SAME = {
    "favorite": "pref", "favourite": "pref", "prefer": "pref", "prefers": "pref",
    "preferred": "pref", "like": "pref", "likes": "pref", "love": "pref", "loves": "pref",
    "called": "name", "named": "name", "names": "name",
    "colors": "colour", "color": "colour", "colours": "colour",
    "languages": "language",
}
_RECALL = {"discuss", "discussed", "earlier", "said", "talk", "talked", "summarise", "summarize",
           "summary", "before", "previously"}


@dataclass(frozen=True, slots=True)
class DemoAnswer:
    """The demo model's reply and its usage in words."""

    text: str
    prompt_tokens: int
    completion_tokens: int


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("'", ""))


# A session's history reaches the model again on every turn: each text is analysed once and
# the result kept (bounded), so that a turn costs a lookup per old message, not a regex pass.
_CACHED_TEXTS = 65536


@functools.lru_cache(maxsize=_CACHED_TEXTS)
def word_count(text: str) -> int:
    """Tokens of ``text`` for the demo model: its words."""
    return len(_words(text))


@functools.lru_cache(maxsize=_CACHED_TEXTS)
def _statements(text: str) -> tuple[tuple[str, frozenset[str]], ...]:
    """The statements (sentences that are not questions) of one message, with their keywords."""
    return tuple((s, frozenset(keywords(s))) for s in (p.strip() for p in _SENTENCE.split(text))
                 if s and not _is_question(s))


def keywords(text: str) -> list[str]:
    """Content words of ``text`` (stop words dropped, simple plural folding), in order."""
    out = []
    for w in _words(text):
        if w in _STOP:
            continue
        w = _SAME.get(w, w)
        out.append(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w)
    return out


def _keys(text: str) -> set[str]:
    return set(keywords(text))


def _is_question(text: str) -> bool:
    words = _words(text)
    return text.rstrip().endswith("?") or bool(words and words[0] in _QUESTION_WORDS)


def _content(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, list):  # OpenAI content parts
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""


def demo_answer(messages: list[dict]) -> DemoAnswer:
    """Answer the last user message of ``messages`` from the messages before it."""
    prompt_tokens = sum(word_count(_content(m)) for m in messages)
    last_user = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].get("role") == "user"), None)
    if last_user is None:
        text = f"{DEMO_LABEL} No user message reached me."
        return DemoAnswer(text, prompt_tokens, len(_words(text)))
    first = _content(messages[0]) if messages and messages[0].get("role") == "system" else ""
    if first.startswith(SUMMARY_MARKER):
        text = _summary(_content(messages[last_user]), first)
        return DemoAnswer(text, prompt_tokens, len(_words(text)))
    question = _content(messages[last_user]).strip()
    earlier = [m for m in messages[:last_user] if m.get("role") in ("user", "system", "tool")]
    if not _is_question(question):  # a statement is acknowledged: nothing earlier to read
        text = f"{DEMO_LABEL} Noted: \u201c{question}\u201d."
    else:
        statements = [(m.get("role"), s, keys) for m in earlier for s, keys in _statements(_content(m))]
        text = _answer_question(question, statements)
    return DemoAnswer(text, prompt_tokens, len(_words(text)))


_SUMMARY_HEAD = f"{DEMO_LABEL} Summary, what the user said:"


def _summary(request: str, instructions: str) -> str:
    """A deterministic summary: the user's statements, the previous summary's first, as
    sentences (so that questions find them later); the newest kept within the word limit."""
    m = _AT_MOST.search(instructions)
    limit = int(m.group(1)) if m else 200
    previous, _, conversation = request.partition("Conversation:\n")
    said = [s.strip() for s in _SENTENCE.split(previous.removeprefix("Summary so far: ").replace(_SUMMARY_HEAD, ""))
            if s.strip()]
    for line in conversation.splitlines():
        if line.startswith("User: "):
            said += [s.strip() for s in _SENTENCE.split(line[6:]) if s.strip() and not _is_question(s)]
    kept: list[str] = []
    budget = limit - len(_words(_SUMMARY_HEAD))
    for s in reversed(said):
        n = len(_words(s))
        if n > budget:
            break
        kept.insert(0, s if s[-1] in ".!?" else s + ".")
        budget -= n
    return " ".join([_SUMMARY_HEAD, *kept]) if kept else f"{_SUMMARY_HEAD} nothing to keep."


def _answer_question(question: str, statements: list[tuple[str, str, frozenset[str]]]) -> str:
    asked = _keys(question)
    scored = []
    for pos, (_, s, keys) in enumerate(statements):
        overlap = len(asked & keys)
        if overlap:
            scored.append((overlap, pos, s))
    if scored:
        best = max(o for o, _, _ in scored)
        # Latest statement first: the newest fact about a subject wins.
        quotes = [s for o, _, s in sorted(scored, key=lambda t: -t[1]) if o == best][:3]
        return f"{DEMO_LABEL} From earlier in our conversation: " + " ".join(f"\u201c{q}\u201d" for q in quotes)
    said = [s for role, s, _ in statements if role == "user"]
    if asked & _RECALL and said:
        recent = said[-3:]
        return f"{DEMO_LABEL} Earlier you said: " + " ".join(f"\u201c{q}\u201d" for q in recent)
    return f"{DEMO_LABEL} I find nothing about that earlier in this conversation."
