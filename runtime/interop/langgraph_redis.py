"""LangGraph checkpoints in repertory's Redis: five keys per thread, one Lua call per verb.

Keys (``<p>`` the store prefix, ``T`` the thread id with braces escaped)::

    <p>:{~lg/T}:idx    sorted set, members "<ns>\\0<checkpoint_id>" (score 0: ordered by bytes)
    <p>:{~lg/T}:byid   sorted set, members "<checkpoint_id>\\0<ns>" (a thread's checkpoints by id)
    <p>:{~lg/T}:cps    hash "<ns>\\0<checkpoint_id>" -> msgpack [parent, type, checkpoint, metadata type, metadata]
    <p>:{~lg/T}:wix    sorted set, members "<ns>\\0<checkpoint_id>\\0<task_id>\\0<idx>"
    <p>:{~lg/T}:wv     hash, same fields -> msgpack write row

The thread id is the hash tag, so a thread lives in one cluster slot and every verb is one
atomic script. Checkpoint ids (uuid6) sort by time as bytes, which is how ZRANGEBYLEX orders,
so "latest", ``before`` and ``limit`` are range reads. A TTL is set on all five keys at every
write (PEXPIRE) and by reads (at most every tenth of the TTL per saver), so a thread expires
whole; ``~`` keeps these keys out of session listings.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

import msgpack

from repertory.stores import RedisStore
from repertory.stores.redis import glob_escape
from repertory.stores.redis_sync import SyncRedis

from .langgraph_rows import CheckpointRow, WriteRow
from .stores import thread_tag

__all__ = ["RedisThreads"]

_HELPERS = r"""
local function expire(keys, ttl)
  for i = 1, #keys do
    if ttl == '' then redis.call('PERSIST', keys[i]) else redis.call('PEXPIRE', keys[i], ttl) end
  end
end
local function entry(keys, member)
  local rec = redis.call('HGET', keys[3], member)
  if not rec then return nil end
  local fields = redis.call('ZRANGEBYLEX', keys[4], '[' .. member .. '\0', '(' .. member .. '\1')
  local writes = {}
  if #fields > 0 then writes = redis.call('HMGET', keys[5], unpack(fields)) end
  return {member, rec, writes}
end
local function by_ns(m)  -- "<id>\0<ns>" -> "<ns>\0<id>"
  local i = string.find(m, '\0', 1, true)
  return string.sub(m, i + 1) .. '\0' .. string.sub(m, 1, i - 1)
end
"""

# KEYS: idx, byid, cps, wix, wv.  ARGV: ns, checkpoint id ('' latest)[, ttl ms: refresh if the thread has one]
_GET = r"""
local member = ARGV[1] .. '\0' .. ARGV[2]
if ARGV[2] == '' then
  local r = redis.call('ZREVRANGEBYLEX', KEYS[1], '(' .. ARGV[1] .. '\1', '[' .. ARGV[1] .. '\0', 'LIMIT', 0, 1)
  if #r == 0 then return false end
  member = r[1]
end
local e = entry(KEYS, member)
if e and ARGV[3] and redis.call('PTTL', KEYS[1]) > 0 then expire(KEYS, ARGV[3]) end
return e or false
"""
GET = "#!lua flags=no-writes\n" + _HELPERS + _GET
GET_REFRESH = "#!lua\n" + _HELPERS + _GET

# ARGV: has ns ('1'/'0'), ns, checkpoint id (''), before (''), limit ('')
LIST = "#!lua flags=no-writes\n" + _HELPERS + r"""
local has_ns, ns, id, before, limit = ARGV[1] == '1', ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local members = {}
if id ~= '' then
  if has_ns then members = {ns .. '\0' .. id}
  else
    for _, m in ipairs(redis.call('ZRANGEBYLEX', KEYS[2], '[' .. id .. '\0', '(' .. id .. '\1')) do
      members[#members + 1] = by_ns(m)
    end
  end
else
  local key, top, bottom = KEYS[1], '(' .. ns .. '\1', '[' .. ns .. '\0'
  if has_ns then
    if before ~= '' then top = '(' .. ns .. '\0' .. before end
  else
    key, top, bottom = KEYS[2], '+', '-'
    if before ~= '' then top = '(' .. before end
  end
  local found
  if limit ~= '' then found = redis.call('ZREVRANGEBYLEX', key, top, bottom, 'LIMIT', 0, tonumber(limit))
  else found = redis.call('ZREVRANGEBYLEX', key, top, bottom) end
  for _, m in ipairs(found) do
    if has_ns then members[#members + 1] = m else members[#members + 1] = by_ns(m) end
  end
end
local out = {}
for _, m in ipairs(members) do
  local e = entry(KEYS, m)
  if e then out[#out + 1] = e end
end
return out
"""

# ARGV: member, checkpoint id .. '\0' .. ns, record, ttl ms ('' none)
PUT = "#!lua\n" + _HELPERS + r"""
redis.call('ZADD', KEYS[1], 0, ARGV[1])
redis.call('ZADD', KEYS[2], 0, ARGV[2])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
expire(KEYS, ARGV[4])
return 1
"""

# ARGV: ttl ms (''), replace ('1'/'0'), then field, value pairs
PUT_WRITES = "#!lua\n" + _HELPERS + r"""
local set = 'HSETNX'
if ARGV[2] == '1' then set = 'HSET' end
for i = 3, #ARGV, 2 do
  redis.call(set, KEYS[5], ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[4], 0, ARGV[i])
end
expire(KEYS, ARGV[1])
return 1
"""

DELETE = "#!lua flags=allow-oom\nreturn redis.call('DEL', unpack(KEYS))\n"

# ARGV: ttl ms (''), n, then n (member, by-id member, record) triples, then (field, value) write pairs
PUT_MANY = "#!lua\n" + _HELPERS + r"""
local n = tonumber(ARGV[2])
for i = 3, 2 + 3 * n, 3 do
  redis.call('ZADD', KEYS[1], 0, ARGV[i])
  redis.call('ZADD', KEYS[2], 0, ARGV[i + 1])
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 2])
end
for i = 3 + 3 * n, #ARGV, 2 do
  redis.call('HSET', KEYS[5], ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[4], 0, ARGV[i])
end
if n > 0 then expire(KEYS, ARGV[1]) end
return n
"""

# ARGV: (member, by-id member) pairs: those checkpoints and their writes go
DELETE_MEMBERS = "#!lua flags=allow-oom\n" + r"""
for i = 1, #ARGV, 2 do
  local m = ARGV[i]
  redis.call('ZREM', KEYS[1], m)
  redis.call('ZREM', KEYS[2], ARGV[i + 1])
  redis.call('HDEL', KEYS[3], m)
  local fields = redis.call('ZRANGEBYLEX', KEYS[4], '[' .. m .. '\0', '(' .. m .. '\1')
  for j = 1, #fields, 1000 do
    local part = {unpack(fields, j, math.min(j + 999, #fields))}
    redis.call('HDEL', KEYS[5], unpack(part))
    redis.call('ZREM', KEYS[4], unpack(part))
  end
end
if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('DEL', unpack(KEYS)) end
return 1
"""

_SUFFIXES = ("idx", "byid", "cps", "wix", "wv")


def _ttl_arg(ttl: float | None) -> str:
    return "" if ttl is None else str(max(1, round(ttl * 1000)))


def _decode(thread_id: str, entry: list[Any]) -> tuple[CheckpointRow, list[WriteRow]]:
    member, rec, writes = entry
    ns, _, checkpoint_id = member.decode().partition("\0")
    parent, ctype, checkpoint, mtype, metadata = msgpack.unpackb(rec)
    rows = [tuple(msgpack.unpackb(w)) for w in writes if w is not None]
    row = (thread_id, ns, checkpoint_id, parent, ctype, checkpoint, mtype, metadata)
    return row, rows  # type: ignore[return-value]


class RedisThreads:
    """The Redis side of ``RepertorySaver``: rows in, rows out (serialization is the saver's)."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self._sync = SyncRedis(store)
        sources = {"get": GET, "get_refresh": GET_REFRESH, "list": LIST, "put": PUT, "put_writes": PUT_WRITES,
                   "delete": DELETE, "put_many": PUT_MANY, "delete_members": DELETE_MEMBERS}
        self._async_scripts = {name: store.register_script(src) for name, src in sources.items()}
        self._sync_scripts = {name: self._sync.register_script(src) for name, src in sources.items()}
        self._head = f"{store.prefix}:{{"
        self._touched: dict[str, float] = {}  # thread -> when this saver last refreshed its TTL

    def keys(self, thread_id: str) -> list[str]:
        tag = thread_tag("lg", thread_id)
        return [self.store.tagged_key(tag, s) for s in _SUFFIXES]

    # -- one op, run either way ----------------------------------------------------------
    def _run(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        return self._sync.run_script(self._sync_scripts[name], keys, args, f"langgraph {name}")

    async def _arun(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        return await self.store.run_script(self._async_scripts[name], keys, args, f"langgraph {name}")

    def _get_op(self, thread_id: str, ns: str, checkpoint_id: str | None, refresh: float | None):
        args: list[Any] = [ns, checkpoint_id or ""]
        if refresh is not None:
            # refresh on access at most every tenth of the TTL: other reads write nothing
            now = time.monotonic()
            if now - self._touched.get(thread_id, -refresh) <= refresh / 10:
                return "get", args
            self._touched[thread_id] = now
            args.append(_ttl_arg(refresh))
            return "get_refresh", args
        return "get", args

    def get(self, thread_id: str, ns: str, checkpoint_id: str | None, refresh: float | None = None):
        name, args = self._get_op(thread_id, ns, checkpoint_id, refresh)
        res = self._run(name, self.keys(thread_id), args)
        return _decode(thread_id, res) if res else None

    async def aget(self, thread_id: str, ns: str, checkpoint_id: str | None, refresh: float | None = None):
        name, args = self._get_op(thread_id, ns, checkpoint_id, refresh)
        res = await self._arun(name, self.keys(thread_id), args)
        return _decode(thread_id, res) if res else None

    @staticmethod
    def _list_args(ns, checkpoint_id, before, limit) -> list[Any]:
        return ["0" if ns is None else "1", ns or "", checkpoint_id or "", before or "",
                "" if limit is None else str(limit)]

    def list(self, thread_id, ns, checkpoint_id, before, limit):
        threads = [thread_id] if thread_id is not None else self._thread_ids(
            self._sync.scan_keys(self._pattern()))
        args = self._list_args(ns, checkpoint_id, before, limit)
        return _merge([(t, self._run("list", self.keys(t), args)) for t in threads], limit)

    async def alist(self, thread_id, ns, checkpoint_id, before, limit):
        threads = [thread_id] if thread_id is not None else self._thread_ids(
            await self.store.scan_keys(self._pattern()))
        args = self._list_args(ns, checkpoint_id, before, limit)
        return _merge([(t, await self._arun("list", self.keys(t), args)) for t in threads], limit)

    def _pattern(self) -> str:
        return f"{glob_escape(self._head)}~lg/*}}:idx"

    def _thread_ids(self, names: list[bytes]) -> list[str]:
        start, end = len(self._head) + len("~lg/"), -len("}:idx")
        return sorted(unquote(n.decode()[start:end]) for n in names)

    @staticmethod
    def _put_args(row: CheckpointRow, ttl: float | None) -> list[Any]:
        _, ns, checkpoint_id, parent, ctype, checkpoint, mtype, metadata = row
        rec = msgpack.packb([parent, ctype, checkpoint, mtype, metadata])
        return [f"{ns}\0{checkpoint_id}", f"{checkpoint_id}\0{ns}", rec, _ttl_arg(ttl)]

    def put(self, row: CheckpointRow, run_id: str | None, ttl: float | None) -> None:
        self._run("put", self.keys(row[0]), self._put_args(row, ttl))

    async def aput(self, row: CheckpointRow, run_id: str | None, ttl: float | None) -> None:
        await self._arun("put", self.keys(row[0]), self._put_args(row, ttl))

    @staticmethod
    def _writes_args(key: tuple[str, str, str], rows: Sequence[WriteRow], replace: bool,
                     ttl: float | None) -> list[Any]:
        _, ns, checkpoint_id = key
        args: list[Any] = [_ttl_arg(ttl), "1" if replace else "0"]
        for row in rows:
            args += [f"{ns}\0{checkpoint_id}\0{row[0]}\0{row[5]}", msgpack.packb(list(row))]
        return args

    def put_writes(self, key, rows, replace, ttl) -> None:
        self._run("put_writes", self.keys(key[0]), self._writes_args(key, rows, replace, ttl))

    async def aput_writes(self, key, rows, replace, ttl) -> None:
        await self._arun("put_writes", self.keys(key[0]), self._writes_args(key, rows, replace, ttl))

    def delete(self, thread_id: str) -> None:
        self._run("delete", self.keys(thread_id), ())

    async def adelete(self, thread_id: str) -> None:
        await self._arun("delete", self.keys(thread_id), ())

    # -- copy, delete runs, prune: reads in Python, then one script per thread ---------------
    def copy(self, src: str, dst: str, ttl: float | None) -> None:
        self._run("put_many", self.keys(dst), _copy_args(self.list(src, None, None, None, None), ttl))

    async def acopy(self, src: str, dst: str, ttl: float | None) -> None:
        rows = await self.alist(src, None, None, None, None)
        await self._arun("put_many", self.keys(dst), _copy_args(rows, ttl))

    def delete_runs(self, run_ids: Sequence[str], run_of) -> None:
        wanted = set(run_ids)
        for thread_id in self._thread_ids(self._sync.scan_keys(self._pattern())):
            doomed = _members([r for r, _ in self.list(thread_id, None, None, None, None) if run_of(r) in wanted])
            if doomed:
                self._run("delete_members", self.keys(thread_id), doomed)

    async def adelete_runs(self, run_ids: Sequence[str], run_of) -> None:
        wanted = set(run_ids)
        for thread_id in self._thread_ids(await self.store.scan_keys(self._pattern())):
            rows = await self.alist(thread_id, None, None, None, None)
            doomed = _members([r for r, _ in rows if run_of(r) in wanted])
            if doomed:
                await self._arun("delete_members", self.keys(thread_id), doomed)

    def prune(self, thread_ids: Sequence[str], keep_latest: bool) -> None:
        for thread_id in thread_ids:
            if not keep_latest:
                self.delete(thread_id)
            elif doomed := _older(self.list(thread_id, None, None, None, None)):
                self._run("delete_members", self.keys(thread_id), doomed)

    async def aprune(self, thread_ids: Sequence[str], keep_latest: bool) -> None:
        for thread_id in thread_ids:
            if not keep_latest:
                await self.adelete(thread_id)
            elif doomed := _older(await self.alist(thread_id, None, None, None, None)):
                await self._arun("delete_members", self.keys(thread_id), doomed)

    def close(self) -> None:
        self._sync.close()


def _members(rows: list[CheckpointRow]) -> list[str]:
    return [m for r in rows for m in (f"{r[1]}\0{r[2]}", f"{r[2]}\0{r[1]}")]


def _older(found: list[tuple[CheckpointRow, list[WriteRow]]]) -> list[str]:
    """Every checkpoint but the newest of its namespace (``found`` is newest first)."""
    seen: set[str] = set()
    older = []
    for row, _ in found:
        if row[1] in seen:
            older.append(row)
        seen.add(row[1])
    return _members(older)


def _copy_args(found: list[tuple[CheckpointRow, list[WriteRow]]], ttl: float | None) -> list[Any]:
    args: list[Any] = [_ttl_arg(ttl), len(found)]
    for row, _ in found:
        args += RedisThreads._put_args(row, ttl)[:3]
    for row, writes in found:
        args += RedisThreads._writes_args(row[:3], writes, True, ttl)[2:]
    return args


def _merge(results: list[tuple[str, list[Any]]], limit: int | None) -> list[tuple[CheckpointRow, list[WriteRow]]]:
    rows = [_decode(thread_id, e) for thread_id, entries in results for e in entries]
    if len(results) > 1:
        rows.sort(key=lambda r: r[0][2], reverse=True)
    return rows if limit is None else rows[:limit]

