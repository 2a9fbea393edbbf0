-- enqueue: create one job, or return the job that owns its dedupe key.
--
-- ARGV: 1 prefix, 2 id, 3 kind, 4 payload, 5 run_at ms ('' = due now),
--       6 dedupe key ('' = none), 7 dedupe ttl ms
-- Returns {1, id} when the job was created, {0, existing id} when the dedupe key was taken
-- (nothing is created then).
local p, id, kind = ARGV[1], ARGV[2], ARGV[3]

-- SET NX GET (Redis >= 7.0) claims the key and tells us its owner in one step; a taken key
-- leaves everything untouched.
if ARGV[6] ~= '' then
  local owner = redis.call('SET', p .. ':dedupe:' .. ARGV[6], id, 'NX', 'PX', ARGV[7], 'GET')
  if owner then
    return {0, owner}
  end
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local run_at = now
if ARGV[5] ~= '' then
  run_at = tonumber(ARGV[5])
end

redis.call('HSET', p .. ':job:' .. id,
  'kind', kind, 'payload', ARGV[4], 'state', 'queued', 'attempts', 0,
  'created_at', now, 'run_at', run_at, 'state_at', now)

-- Due jobs go straight to the tail of the ready list (FIFO, and it wakes blocked fetchers);
-- future ones wait in the delayed set until a fetch promotes them.
if run_at <= now then
  redis.call('RPUSH', p .. ':ready', id)
else
  redis.call('ZADD', p .. ':delayed', run_at, id)
end

-- The queued index is scored by run_at (not state_at): its lowest member is the most
-- overdue job, which gives `oldest_queued_age_s` in O(log n).
redis.call('ZADD', p .. ':s:queued', run_at, id)
redis.call('ZADD', p .. ':s:queued:' .. kind, run_at, id)
return {1, id}
