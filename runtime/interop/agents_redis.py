"""Agents SDK sessions in repertory's Redis: two keys per session, one Lua call per method.

    <p>:{~agents/S}:items   list of the items as JSON text, oldest first
    <p>:{~agents/S}:info    hash: revision (the compare-and-set counter), updated_at

``S`` (the session id, braces escaped) is the hash tag: a session lives in one cluster slot, and
each method is one atomic script, one round trip. A TTL is set on both keys by every write and
refreshed by reads (where one is set; at most every tenth of the TTL per handle). A new session
starts at a random revision, so a revision never repeats across a clear and a new start.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from repertory.errors import ConcurrentUpdate
from repertory.stores import RedisStore

from .stores import thread_tag

__all__ = ["RedisItems"]

_HELPERS = r"""
local function expire(ttl)
  for i = 1, 2 do
    if ttl == '' then redis.call('PERSIST', KEYS[i]) else redis.call('PEXPIRE', KEYS[i], ttl) end
  end
end
local function revision() return tonumber(redis.call('HGET', KEYS[2], 'revision') or '0') end
"""

# ARGV: limit ('' all), ttl ms ('' none: no refresh)
GET = "#!lua\n" + _HELPERS + r"""
local items
local limit = tonumber(ARGV[1])
if limit == nil or limit < 0 then items = redis.call('LRANGE', KEYS[1], 0, -1)
elseif limit == 0 then items = {}
else items = redis.call('LRANGE', KEYS[1], -limit, -1) end
if ARGV[2] ~= '' and #items > 0 and redis.call('PTTL', KEYS[1]) > 0 then expire(ARGV[2]) end
return items
"""

# ARGV: expected revision (''), first revision, now, ttl ms (''), items... -> {1, revision} or {0, revision}
ADD = "#!lua\n" + _HELPERS + r"""
local rev = revision()
if ARGV[1] ~= '' and tonumber(ARGV[1]) ~= rev then return {0, rev} end
for i = 5, #ARGV, 1000 do
  redis.call('RPUSH', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
if rev == 0 then rev = tonumber(ARGV[2]) else rev = rev + 1 end
redis.call('HSET', KEYS[2], 'revision', rev, 'updated_at', ARGV[3])
expire(ARGV[4])
return {1, rev}
"""

# ARGV: expected revision (''), now, ttl ms ('') -> {1, revision, item}, {2, revision} (empty), {0, revision}
POP = "#!lua\n" + _HELPERS + r"""
local rev = revision()
if ARGV[1] ~= '' and tonumber(ARGV[1]) ~= rev then return {0, rev} end
local item = redis.call('RPOP', KEYS[1])
if not item then return {2, rev} end
rev = rev + 1
redis.call('HSET', KEYS[2], 'revision', rev, 'updated_at', ARGV[2])
expire(ARGV[3])
return {1, rev, item}
"""

# ARGV: expected revision ('') -> {1} or {0, revision}
CLEAR = "#!lua flags=allow-oom\n" + _HELPERS + r"""
if ARGV[1] ~= '' then
  local rev = revision()
  if tonumber(ARGV[1]) ~= rev then return {0, rev} end
end
redis.call('DEL', KEYS[1], KEYS[2])
return {1}
"""

REVISION = "#!lua flags=no-writes\n" + _HELPERS + "return revision()\n"


def _opt(value: Any) -> str:
    return "" if value is None else str(value)


def _ttl_ms(ttl: float | None) -> str:
    return "" if ttl is None else str(max(1, round(ttl * 1000)))


class RedisItems:
    """The Redis side of ``RepertorySession``: JSON texts in, JSON texts out."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self._scripts = {name: store.register_script(src) for name, src in
                         (("get", GET), ("add", ADD), ("pop", POP), ("clear", CLEAR), ("revision", REVISION))}
        self._touched: dict[str, float] = {}  # session -> when this handle last refreshed its TTL

    def keys(self, sid: str) -> tuple[str, str]:
        tag = thread_tag("agents", sid)
        return self.store.tagged_key(tag, "items"), self.store.tagged_key(tag, "info")

    async def _run(self, name: str, sid: str, args: Sequence[Any]) -> Any:
        return await self.store.run_script(self._scripts[name], self.keys(sid), args, f"agents session {name}")

    @staticmethod
    def _conflict(sid: str, revision: int, expected: int | None) -> ConcurrentUpdate:
        return ConcurrentUpdate(f"Agents session {sid!r} is at revision {revision}, the call expected {expected}; "
                                "read it again (get_items, revision) and retry")

    async def get(self, sid: str, limit: int | None, ttl: float | None) -> list[str]:
        if limit == 0:
            return []
        now = time.monotonic()
        if ttl is not None and now - self._touched.get(sid, -ttl) > ttl / 10:
            # refresh on access, at most every tenth of the TTL: other reads are a plain LRANGE
            self._touched[sid] = now
            data = await self._run("get", sid, (_opt(limit), _ttl_ms(ttl)))
        else:
            start = 0 if limit is None or limit < 0 else -limit
            data = await self.store.run_command("agents session get", "LRANGE", self.keys(sid)[0], start, -1)
        return [d.decode() for d in data]

    async def add(self, sid: str, data: Sequence[str], expected: int | None, first: int, ttl: float | None) -> int:
        ok, rev = await self._run("add", sid, (_opt(expected), first, repr(time.time()), _ttl_ms(ttl), *data))
        if not ok:
            raise self._conflict(sid, rev, expected)
        return int(rev)

    async def pop(self, sid: str, expected: int | None, ttl: float | None) -> str | None:
        res = await self._run("pop", sid, (_opt(expected), repr(time.time()), _ttl_ms(ttl)))
        if res[0] == 0:
            raise self._conflict(sid, res[1], expected)
        return res[2].decode() if res[0] == 1 else None

    async def clear(self, sid: str, expected: int | None) -> None:
        res = await self._run("clear", sid, (_opt(expected),))
        if res[0] == 0:
            raise self._conflict(sid, res[1], expected)

    async def revision(self, sid: str) -> int:
        return int(await self._run("revision", sid, ()))

    def sweep(self) -> int:
        return 0
