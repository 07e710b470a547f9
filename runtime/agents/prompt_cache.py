"""Recent histories, decoded, so that a turn decodes only the messages that are new.

A host sends the agent each turn's history (``SessionState.prompt``): for a long one, only
what this agent lacks of its lineage (:meth:`PromptCache.extend`, ``repertory.state.prompt``),
else one msgpack array of the stored messages, which the agent decodes: O(history) on every
turn (~0.2 ms per 500 messages, several times that in a busy process), though a session's
next turn adds only its last exchange and the new message. For those, :class:`PromptCache`
keeps recent histories' bytes with their decoded messages; a history whose bytes start with
a kept one's decodes only the rest. A hit is exact, by comparing the bytes; entries are looked up by the first
bytes of the history (its first message, with its timestamp), so two sessions that begin
alike can only evict each other, never mix. A history cut at its start (a window that moved)
or rewritten misses and is decoded whole. Bounded by the bytes kept; short histories, cheap
to decode, are not kept.

The decoded messages are shared by the turns of one history: what the agent does with them
reads them (``model_client.to_openai`` copies what it hands a model client).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from repertory.errors import PromptUnknown
from repertory.stores.codec import array_head, unpack_array

__all__ = ["LINEAGE_BYTES", "PromptCache"]

MIN_BYTES = 16 * 1024    # shorter histories decode in tens of µs: not worth keeping
MAX_BYTES = 4 * 1024 * 1024  # kept history bytes per cache (decoded: a few times that)
# Hosts' lineages (state.prompt), encoded: a session's next turn sends only its new messages.
LINEAGE_BYTES = 64 * 1024 * 1024
_KEY_BYTES = 64


def _body(blob: bytes) -> tuple[int, int] | None:
    """(message count, offset of the first message) of a msgpack array; None if not one."""
    head = blob[0] if blob else 0
    if 0x90 <= head <= 0x9F:
        return head & 0x0F, 1
    if head == 0xDC and len(blob) >= 3:
        return int.from_bytes(blob[1:3], "big"), 3
    if head == 0xDD and len(blob) >= 5:
        return int.from_bytes(blob[1:5], "big"), 5
    return None


class PromptCache:
    """Decodes histories (``pack_array`` blobs), reusing the decoded prefix of recent ones."""

    def __init__(self, max_bytes: int = MAX_BYTES, min_bytes: int = MIN_BYTES,
                 lineage_bytes: int = LINEAGE_BYTES) -> None:
        self.max_bytes, self.min_bytes, self.lineage_bytes = max_bytes, min_bytes, lineage_bytes
        self.decoded_bytes = min(max_bytes, lineage_bytes)  # the lineages' bytes kept decoded too
        # lineage -> (message count, their bytes): the stored messages hosts sent (state.prompt)
        self._lineages: OrderedDict[bytes, tuple[int, bytearray]] = OrderedDict()
        self._lineage_size = 0
        self.extended = 0  # prompts that came as what this cache lacked of a lineage
        self.received = 0  # bytes of stored messages that came in lineages' prompts
        self.unknown = 0  # prompts that extended a lineage this cache no longer held
        # lineage -> (message count, their bytes' length, decoded messages), at most max_bytes
        self._decoded: OrderedDict[bytes, tuple[int, int, list[Any]]] = OrderedDict()
        self._decoded_size = 0
        # first bytes -> (history's message bytes, message count, decoded messages)
        self._kept: OrderedDict[bytes, tuple[bytes, int, list[Any]]] = OrderedDict()
        self._size = 0
        self.hits = 0
        self.decoded = 0  # messages decoded, for tests and benchmarks

    def decode(self, blob: bytes | bytearray | list[dict] | dict[str, Any]) -> list[Any]:
        """The messages of ``blob`` (a list is returned as it is; a dict is what a host sent of a
        prompt's lineage, see :meth:`extend`)."""
        if isinstance(blob, dict):
            return self.extend(blob)
        if not isinstance(blob, (bytes, bytearray)):
            return blob
        blob = bytes(blob)
        shape = _body(blob)
        if shape is None or len(blob) - shape[1] < self.min_bytes:
            return self._whole(blob, shape)
        n, start = shape
        key = blob[start:start + _KEY_BYTES]
        kept = self._kept.get(key)
        if kept is not None:
            body, count, msgs = kept
            if count <= n and blob.startswith(body, start):
                tail = blob[start + len(body):]
                new = unpack_array(array_head(n - count) + tail) if n > count else []
                self.hits += 1
                self.decoded += len(new)
                msgs = msgs + new
                self._keep(key, blob[start:], n, msgs)
                return list(msgs)  # the caller's list: appending to it leaves the kept one
        msgs = self._whole(blob, shape)
        self._keep(key, blob[start:], n, msgs)
        return list(msgs)

    def _whole(self, blob: bytes, shape: tuple[int, int] | None) -> list[Any]:
        msgs = unpack_array(blob)
        self.decoded += shape[0] if shape is not None and isinstance(msgs, list) else 0
        return msgs

    def _keep(self, key: bytes, body: bytes, n: int, msgs: list[Any]) -> None:
        old = self._kept.pop(key, None)
        if old is not None:
            self._size -= len(old[0])
        if len(body) > self.max_bytes:
            return
        self._kept[key] = (body, n, msgs)
        self._size += len(body)
        while self._size > self.max_bytes:
            _, (gone, _, _) = self._kept.popitem(last=False)
            self._size -= len(gone)

    def extend(self, prompt: dict[str, Any]) -> list[Any]:
        """The messages of a prompt sent as the stored messages this cache lacks (``new``,
        after the ``base`` it holds of the ``lineage``) and the turn's own (state.prompt).
        Decodes only what it did not decode before: O(new), not O(history).
        :class:`PromptUnknown` if it does not hold that base: the host then sends it whole."""
        lineage, base, new = prompt["lineage"], prompt["base"], prompt["new"]
        self.received += len(new)
        kept = self._pop_lineage(lineage)
        if base:
            if kept is None or kept[0] != base or prompt["n_new"] < 0:
                self._forget_decoded(lineage)
                self.unknown += 1
                raise PromptUnknown("this agent replica no longer holds the history the prompt extends; "
                                    "send the whole prompt")
            body = kept[1]
            body += new
            self.extended += 1
        else:
            body = bytearray(new)
        count = base + prompt["n_new"]
        if len(body) <= self.lineage_bytes:
            self._lineages[lineage] = (count, body)
            self._lineage_size += len(body)
            while self._lineage_size > self.lineage_bytes:
                gone, (_, gone_body) = self._lineages.popitem(last=False)
                self._lineage_size -= len(gone_body)
                self._forget_decoded(gone)
        try:
            msgs = self._lineage_messages(lineage, count, body)
        except Exception:
            self._drop(lineage)  # what it kept of this lineage is not what the host sent
            raise
        turn = unpack_array(array_head(prompt["n_turn"]) + prompt["turn"])
        return msgs + turn  # the caller's list: appending to it leaves the kept one

    def _lineage_messages(self, lineage: bytes, count: int, body: bytearray) -> list[Any]:
        """The first ``count`` messages of a lineage, ``body`` their bytes: the decoded ones
        kept, and the rest decoded."""
        kept = self._forget_decoded(lineage)
        if kept is not None and kept[0] <= count:
            done, offset, msgs = kept
            if done < count:
                msgs = msgs + unpack_array(array_head(count - done) + body[offset:])
                self.decoded += count - done
        else:
            msgs = unpack_array(array_head(count) + body)
            self.decoded += count
        if len(body) <= self.decoded_bytes:
            self._decoded[lineage] = (count, len(body), msgs)
            self._decoded_size += len(body)
            while self._decoded_size > self.decoded_bytes:
                _, (_, size, _) = self._decoded.popitem(last=False)
                self._decoded_size -= size
        return msgs

    def _drop(self, lineage: bytes) -> None:
        self._pop_lineage(lineage)
        self._forget_decoded(lineage)

    def _pop_lineage(self, lineage: bytes) -> tuple[int, bytearray] | None:
        kept = self._lineages.pop(lineage, None)
        if kept is not None:
            self._lineage_size -= len(kept[1])
        return kept

    def _forget_decoded(self, lineage: bytes) -> tuple[int, int, list[Any]] | None:
        kept = self._decoded.pop(lineage, None)
        if kept is not None:
            self._decoded_size -= kept[1]
        return kept

    def __len__(self) -> int:
        return len(self._kept)
