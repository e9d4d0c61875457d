"""The Lua scripts of :class:`hia_chain.RedisBudget`: one per operation, each one atomic step.

Why Lua: check-and-reserve, settle and release must each be a single step on the server, or
two processes could both see room for the last call. A script runs with the server to itself,
reads the clock once (``TIME``: one clock for every host) and every key it touches is passed in
``KEYS`` under one hash tag (the pool's name), so the scripts also run on Redis Cluster.

Keys (``P`` = ``hia:budget:{name}``):

* ``P:meta``     hash: ``id`` (random, set when the pool is first used; a mismatch means Redis
  lost the pool), ``window`` (the current reset period).
* ``P:charged``  hash, per role: ``<role>:calls|in|out|cost|unrep|failed`` (the usage ledger)
  and ``<role>:ct|cc`` (tokens and cost counted against the caps). Cleared when the period
  rolls over.
* ``P:leases``   hash: lease id -> ``role|tokens|cost`` (one in-flight call).
* ``P:exp``      zset: lease id -> expiry (ms, server clock).
* ``P:held``     hash, per role: ``<role>:calls|tokens|cost`` summed over live leases.
* ``P:reaped``   hash: lease id -> ``role|tokens|cost|window`` of an expired lease, charged as a
  started call; ``P:reaped_at`` zset: when. Kept an hour, so a worker that was only stalled
  can still settle it with the real counts.

Every script first checks the pool id, rolls the period over if due and reaps (at most 256)
expired leases. Every script is idempotent (a retried hold, settle or release after a lost
reply changes nothing), so the client may retry on connection errors.
"""

from __future__ import annotations

__all__ = ["COMMIT", "HOLD", "INIT", "RENEW", "STATE", "UNHOLD"]

# KEYS: meta charged leases exp held reaped reaped_at
# ARGV[1] pool id, ARGV[2] period (ms, 0 = none); script arguments from ARGV[3].
_PRELUDE = r"""
local meta, charged, leases, exp, held, reaped, reaped_at =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
if redis.call('HGET', meta, 'id') ~= ARGV[1] then
  return redis.error_reply('HIA_POOL_LOST')
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local period = tonumber(ARGV[2])
local window = '0'
if period > 0 then window = string.format('%d', math.floor(now / period)) end
if redis.call('HGET', meta, 'window') ~= window then
  redis.call('DEL', charged)
  redis.call('HSET', meta, 'window', window)
end

local function parse(v)
  local role, tok, cost, win = string.match(v, '^([^|]+)|([^|]+)|([^|]+)|?(.*)$')
  return role, tonumber(tok), cost, win
end

local function drop_held(role, tok, cost)
  redis.call('HINCRBY', held, role .. ':calls', -1)
  redis.call('HINCRBY', held, role .. ':tokens', 0 - tok)  -- never -0: not an integer to Redis
  redis.call('HINCRBYFLOAT', held, role .. ':cost', '-' .. cost)
end

-- a started call whose outcome is unknown: one call at its whole bound (sign = 1), or undone (-1)
local function charge_bound(role, tok, cost, sign)
  redis.call('HINCRBY', charged, role .. ':calls', sign)
  redis.call('HINCRBY', charged, role .. ':unrep', sign)
  local n = tok
  if sign < 0 then n = 0 - tok end
  redis.call('HINCRBY', charged, role .. ':ct', n)
  local c = cost
  if sign < 0 then c = '-' .. cost end
  redis.call('HINCRBYFLOAT', charged, role .. ':cc', c)
end

local expired = redis.call('ZRANGEBYSCORE', exp, '-inf', now, 'LIMIT', 0, 256)
for _, id in ipairs(expired) do
  redis.call('ZREM', exp, id)
  local v = redis.call('HGET', leases, id)
  if v then
    redis.call('HDEL', leases, id)
    local role, tok, cost = parse(v)
    drop_held(role, tok, cost)
    charge_bound(role, tok, cost, 1)
    redis.call('HSET', reaped, id, v .. '|' .. window)
    redis.call('ZADD', reaped_at, now, id)
  end
end
local stale = redis.call('ZRANGEBYSCORE', reaped_at, '-inf', now - 3600000, 'LIMIT', 0, 256)
for _, id in ipairs(stale) do
  redis.call('ZREM', reaped_at, id)
  redis.call('HDEL', reaped, id)
end

local function num(key, field)
  return tonumber(redis.call('HGET', key, field) or '0')
end
"""

INIT = r"""
redis.call('HSETNX', KEYS[1], 'id', ARGV[1])
return redis.call('HGET', KEYS[1], 'id')
"""
"""Create the pool if new; returns the pool id (a process remembers it and passes it on)."""

HOLD = (
    _PRELUDE
    + r"""
-- ARGV: role, id, tokens, cost, ttl_ms, cap_calls, cap_tokens, cap_cost ('' = no cap)
local role, id, tok, cost, ttl = ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7])
if redis.call('HEXISTS', leases, id) == 1 then return 1 end
local cap_calls, cap_tokens, cap_cost = ARGV[8], ARGV[9], ARGV[10]
if cap_calls ~= '' and
   num(charged, role .. ':calls') + num(held, role .. ':calls') + 1 > tonumber(cap_calls) then
  return 0
end
if cap_tokens ~= '' and
   num(charged, role .. ':ct') + num(held, role .. ':tokens') + tok > tonumber(cap_tokens) then
  return 0
end
if cap_cost ~= '' and num(charged, role .. ':cc') + num(held, role .. ':cost') + tonumber(cost)
   > tonumber(cap_cost) + 1e-12 then
  return 0
end
redis.call('HSET', leases, id, role .. '|' .. ARGV[5] .. '|' .. cost)
redis.call('ZADD', exp, now + ttl, id)
redis.call('HINCRBY', held, role .. ':calls', 1)
redis.call('HINCRBY', held, role .. ':tokens', tok)
redis.call('HINCRBYFLOAT', held, role .. ':cost', cost)
return 1
"""
)
"""Check the caps and, if one more call fits, add its lease: 1 held, 0 refused."""

COMMIT = (
    _PRELUDE
    + r"""
-- ARGV: role, id, calls, in, out, cost, unrep, failed, charged_tokens, charged_cost
local role, id = ARGV[3], ARGV[4]
local v = redis.call('HGET', leases, id)
if v then
  redis.call('HDEL', leases, id)
  redis.call('ZREM', exp, id)
  local r, tok, cost = parse(v)
  drop_held(r, tok, cost)
else
  local rv = redis.call('HGET', reaped, id)
  if not rv then return 0 end  -- settled already (a retry), or charged at its bound long ago
  redis.call('HDEL', reaped, id)
  redis.call('ZREM', reaped_at, id)
  local r, tok, cost, win = parse(rv)
  if win ~= window then return 0 end  -- a past period paid its bound
  charge_bound(r, tok, cost, -1)  -- the real counts replace the bound charged at expiry
end
redis.call('HINCRBY', charged, role .. ':calls', ARGV[5])
redis.call('HINCRBY', charged, role .. ':in', ARGV[6])
redis.call('HINCRBY', charged, role .. ':out', ARGV[7])
redis.call('HINCRBYFLOAT', charged, role .. ':cost', ARGV[8])
redis.call('HINCRBY', charged, role .. ':unrep', ARGV[9])
redis.call('HINCRBY', charged, role .. ':failed', ARGV[10])
redis.call('HINCRBY', charged, role .. ':ct', ARGV[11])
redis.call('HINCRBYFLOAT', charged, role .. ':cc', ARGV[12])
return 1
"""
)
"""Drop a lease and record the made call, in one step (1 recorded, 0 already settled)."""

UNHOLD = (
    _PRELUDE
    + r"""
-- ARGV: id
local id = ARGV[3]
local v = redis.call('HGET', leases, id)
if v then
  redis.call('HDEL', leases, id)
  redis.call('ZREM', exp, id)
  local r, tok, cost = parse(v)
  drop_held(r, tok, cost)
  return 1
end
local rv = redis.call('HGET', reaped, id)
if rv then  -- expired while the caller was stalled, but the call never left: give it back
  redis.call('HDEL', reaped, id)
  redis.call('ZREM', reaped_at, id)
  local r, tok, cost, win = parse(rv)
  if win == window then charge_bound(r, tok, cost, -1) end
end
return 0
"""
)
"""Drop a lease without charging (the call never left the process)."""

RENEW = (
    _PRELUDE
    + r"""
-- ARGV: ttl_ms, ids...
local ttl = tonumber(ARGV[3])
local n = 0
for i = 4, #ARGV do
  if redis.call('HEXISTS', leases, ARGV[i]) == 1 then
    redis.call('ZADD', exp, 'XX', now + ttl, ARGV[i])
    n = n + 1
  end
end
return n
"""
)
"""Push back the expiry of the given leases (those still live); returns how many."""

STATE = (
    _PRELUDE
    + r"""
-- ARGV: role. Returns strings: calls in out cost unrep failed ct cc held_calls held_tokens held_cost
local role = ARGV[3]
local out = {}
for _, f in ipairs({'calls', 'in', 'out', 'cost', 'unrep', 'failed', 'ct', 'cc'}) do
  table.insert(out, redis.call('HGET', charged, role .. ':' .. f) or '0')
end
for _, f in ipairs({'calls', 'tokens', 'cost'}) do
  table.insert(out, redis.call('HGET', held, role .. ':' .. f) or '0')
end
return out
"""
)
"""One role's ledger, charged totals and held totals (also reaps expired leases)."""
