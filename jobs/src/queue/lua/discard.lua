-- discard: operator discard of a queued, retrying or dead job (running jobs are left alone).
--
-- ARGV: 1 prefix, 2 id
-- Returns 1 when the job moved to discarded, 0 otherwise.
-- A waiting job is taken out of the delayed set or, failing that, the ready list. LREM on the
-- ready list is O(n) in its length; it stops at the first match and discards are rare operator
-- actions. If a blocking pop has just moved the id to a worker's in-flight list, the worker's
-- mark step sees `discarded` and drops it.
arg_count('discard', 2)
local p, id = word_arg('discard', 1), word_arg('discard', 2)
local key = p .. ':job:' .. id
local j = redis.call('HMGET', key, 'state', 'kind')
local st, kind = j[1], j[2]
if st ~= 'queued' and st ~= 'retrying' and st ~= 'dead' then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if st ~= 'dead' and redis.call('ZREM', p .. ':delayed', id) == 0 then
  redis.call('LREM', p .. ':ready', 1, id)
end
redis.call('HSET', key, 'state', 'discarded', 'finished_at', now, 'state_at', now)
redis.call('ZREM', p .. ':s:' .. st, id)
redis.call('ZREM', p .. ':s:' .. st .. ':' .. kind, id)
redis.call('ZADD', p .. ':s:discarded', now, id)
redis.call('ZADD', p .. ':s:discarded:' .. kind, now, id)
return 1
