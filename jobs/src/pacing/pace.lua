-- GCRA reservation (see pacing.rs). One event per interval per key, shared by every caller.
-- KEYS[1]  {prefix}:pace:{key}: the theoretical arrival time (tat), microseconds since the epoch
-- ARGV[1]  interval between two events, microseconds (>= 1)
-- ARGV[2]  longest wait a caller accepts, microseconds
-- Returns {granted, wait_us}: granted = 1 reserved a slot `wait_us` from now (the caller sleeps
-- that long); granted = 0 reserved nothing, the next slot is `wait_us` away.
-- The server's clock (TIME) is the only clock, so the callers' clocks never matter.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local max_wait = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or 0) or 0
if tat < now then
  tat = now
end
local wait = tat - now
if wait > max_wait then
  return {0, math.floor(wait)}
end
local next_tat = tat + interval
-- Expire one second after the last reserved slot: an idle key disappears on its own.
local ttl_ms = math.floor((next_tat - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', ttl_ms)
return {1, math.floor(wait)}
