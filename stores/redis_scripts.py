"""The Lua scripts of the Redis store. Each touches only one session's keys (one cluster slot).

Every script starts with a Redis 7 ``#!lua`` shebang that declares its flags, because a script
without one is not refused when Redis is out of memory: Redis only stops its first
memory-growing command, and COMMIT's first write is a DEL or LTRIM, after which nothing stops
it (100 turns of 100 KB went into a Redis with maxmemory 2 MB and noeviction). With a shebang:

* writers (no flags) are refused before they run while used memory is over maxmemory, so
  a refused write has stored nothing;
* readers (``no-writes``) run regardless;
* DELETE and DELETE_CHECKPOINTS (``allow-oom``) run regardless: they only free memory, and
  deleting is how an operator gets out of that state.
"""

from __future__ import annotations


def _script(body: str, flags: str = "") -> str:
    # the shebang must be the script's very first line
    return (f"#!lua flags={flags}\n" if flags else "#!lua\n") + body


# Sets the same absolute expiry (or none) on every key of one session, checkpoints included.
EXPIRE_ALL = """
local function expire_all(meta, msgs, cps, cp_prefix, at)
  local keys = {meta, msgs, cps}
  for _, id in ipairs(redis.call('ZRANGE', cps, 0, -1)) do keys[#keys + 1] = cp_prefix .. id end
  for _, k in ipairs(keys) do
    if at == '' then redis.call('PERSIST', k) else redis.call('PEXPIREAT', k, at) end
  end
end
"""

# KEYS: meta, msgs, cps, lease
# ARGV: expected_version, meta, base_count, replace, updated_at, expire_ms|'', expires_at|'',
#       write_id, cp_prefix, first_revision, owner|'',
#       cp_id|'', kind, seq, created_at, turn, label, data  (a checkpoint written with the state),
#       message...
# -> {1, new_version}, {0, current_version} (revision conflict) or {2, current_version} (leased)
COMMIT = _script(EXPIRE_ALL + """
local expected = tonumber(ARGV[1])
local stored = redis.call('HGET', KEYS[1], 'version')
local current = stored and tonumber(stored) or 0
local holder = redis.call('GET', KEYS[4])
if holder and holder ~= ARGV[11] then return {2, current} end
if current ~= expected then
  -- the client library re-sends after a dropped connection; if the first send did apply,
  -- answer as it would have instead of reporting a conflict with ourselves
  -- (rewriting the id, a no-op for the data, puts this connection's replication offset past the
  -- first write, so a WAIT that follows the resend confirms that write and not nothing)
  if stored and redis.call('HGET', KEYS[1], 'write_id') == ARGV[8] then
    redis.call('HSET', KEYS[1], 'write_id', ARGV[8])
    return {1, current}
  end
  return {0, current}
end
local base = tonumber(ARGV[3])
if expected == 0 or ARGV[4] == '1' or base <= 0 then
  redis.call('DEL', KEYS[2])
else
  redis.call('LTRIM', KEYS[2], 0, base - 1)
end
-- unpack() is bounded by the Lua C stack: push long histories in slices
for i = 19, #ARGV, 1000 do
  redis.call('RPUSH', KEYS[2], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
local version = current + 1
if current == 0 then version = tonumber(ARGV[10]) end
redis.call('HSET', KEYS[1], 'version', version, 'meta', ARGV[2], 'n_messages', redis.call('LLEN', KEYS[2]),
           'updated_at', ARGV[5], 'expires_at', ARGV[7], 'write_id', ARGV[8])
if ARGV[12] ~= '' then
  redis.call('HSET', ARGV[9] .. ARGV[12], 'kind', ARGV[13], 'seq', ARGV[14], 'created_at', ARGV[15],
             'turn', ARGV[16], 'label', ARGV[17], 'data', ARGV[18])
  redis.call('ZADD', KEYS[3], ARGV[15], ARGV[12])
end
expire_all(KEYS[1], KEYS[2], KEYS[3], ARGV[9], ARGV[6])
return {1, version}
""")

# KEYS: meta, msgs -> false or {version, meta, n_messages, updated_at, expires_at, {messages}}
# One script, so the hash and the list are read at one instant (they cannot expire in between).
LOAD = _script("""
local h = redis.call('HMGET', KEYS[1], 'version', 'meta', 'n_messages', 'updated_at', 'expires_at')
if not h[1] then return false end
local n = tonumber(h[3])
local msgs = {}
if n > 0 then msgs = redis.call('LRANGE', KEYS[2], 0, n - 1) end
return {h[1], h[2], h[3], h[4], h[5], msgs}
""", "no-writes")

# KEYS: meta, msgs, cps; ARGV: expire_ms|'', expires_at|'', cp_prefix -> 1, or 0 if gone
TOUCH = _script(EXPIRE_ALL + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'expires_at', ARGV[2])
expire_all(KEYS[1], KEYS[2], KEYS[3], ARGV[3], ARGV[1])
return 1
""")

# KEYS: lease; ARGV: owner, ttl_ms -> 0 if owner holds the lease now, else the holder's ms left.
# The lease key expires by itself: a holder that dies blocks others for one TTL at most.
ACQUIRE_LEASE = _script("""
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return math.max(redis.call('PTTL', KEYS[1]), 1) end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 0
""")

# KEYS: lease; ARGV: owner -> 1 if released
RELEASE_LEASE = _script("""
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
""", "allow-oom")

# KEYS: meta, msgs, cps, deleted; ARGV: cp_prefix, op_id|'', remember_s -> 1 if the session existed
# (or if this op id already deleted it: a resend deletes nothing, not even a session made since)
DELETE = _script("""
if ARGV[2] ~= '' then
  if redis.call('GET', KEYS[4]) == ARGV[2] then return 1 end
  redis.call('SET', KEYS[4], ARGV[2], 'EX', ARGV[3])
end
local existed = redis.call('EXISTS', KEYS[1])
for _, id in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do redis.call('UNLINK', ARGV[1] .. id) end
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3])
return existed
""", "allow-oom")

# KEYS: meta, cps, cp; ARGV: cp_id, kind, seq, created_at, turn, label, data
PUT_CHECKPOINT = _script("""
redis.call('HSET', KEYS[3], 'kind', ARGV[2], 'seq', ARGV[3], 'created_at', ARGV[4], 'turn', ARGV[5],
           'label', ARGV[6], 'data', ARGV[7])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
-- a checkpoint lives exactly as long as its session (no session: no expiry to inherit)
local at = redis.call('PEXPIRETIME', KEYS[1])
if at > 0 then
  redis.call('PEXPIREAT', KEYS[3], at)
  redis.call('PEXPIREAT', KEYS[2], at)
else
  redis.call('PERSIST', KEYS[3])
  redis.call('PERSIST', KEYS[2])
end
return 1
""")

# KEYS: cps; ARGV: cp_prefix, kind|'' -> {{cp_id, kind, seq, created_at, turn, label}, ...}
LIST_CHECKPOINTS = _script("""
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local h = redis.call('HMGET', ARGV[1] .. id, 'kind', 'seq', 'created_at', 'turn', 'label')
  if h[1] and (ARGV[2] == '' or h[1] == ARGV[2]) then
    out[#out + 1] = {id, h[1], h[2], h[3], h[4], h[5]}
  end
end
return out
""", "no-writes")

# KEYS: cps; ARGV: cp_prefix, cp_id... -> how many existed
DELETE_CHECKPOINTS = _script("""
local n = 0
for i = 2, #ARGV do
  local indexed = redis.call('ZREM', KEYS[1], ARGV[i])
  local stored = redis.call('UNLINK', ARGV[1] .. ARGV[i])
  if indexed == 1 or stored == 1 then n = n + 1 end
end
return n
""", "allow-oom")

# KEYS: meta, msgs, cps; ARGV: cp_prefix -> {meta bytes, message bytes, checkpoint bytes} or nil.
# Sums sizes in Redis: nothing but three numbers crosses the network.
USAGE = _script("""
if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
local meta = redis.call('HSTRLEN', KEYS[1], 'meta')
local msgs, n = 0, redis.call('LLEN', KEYS[2])
for i = 0, n - 1, 512 do
  for _, m in ipairs(redis.call('LRANGE', KEYS[2], i, i + 511)) do msgs = msgs + #m end
end
local cps = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  cps = cps + redis.call('HSTRLEN', ARGV[1] .. id, 'data')
end
return {meta, msgs, cps}
""", "no-writes")

# KEYS: steps, stepturns; ARGV: seq, data, turn_id, expire_ms|'' -> 1
# The step and its index entry land together, with the session's expiry (or none). A script
# rather than MULTI on a Redis Cluster: redis-py's cluster transactions leak their connection.
PUT_STEP = _script("""
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
for _, k in ipairs(KEYS) do
  if ARGV[4] == '' then redis.call('PERSIST', k) else redis.call('PEXPIREAT', k, ARGV[4]) end
end
return 1
""")

# KEYS: steps, stepturns; ARGV: turn_id -> 1
DROP_STEPS = _script("""
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return 1
""", "allow-oom")
