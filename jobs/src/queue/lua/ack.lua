-- ack: end a running job's attempt: done, retry (retrying at a time), dead, or release.
--
-- ARGV: 1 prefix, 2 session, 3 worker name, 4 id, 5 op ('done' | 'retry' | 'dead' |
--       'release'), 6 error (retry, dead), 7 next run ms (retry)
-- Returns 1 when the job moved, 0 when the ack was stale: the job is not running, or is
-- running for another session (it was recovered from this session and claimed again). A
-- stale ack changes nothing; the current owner's ack is the one that counts.
local p, session, name, id, op = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local key = p .. ':job:' .. id
local j = redis.call('HMGET', key, 'state', 'session', 'kind', 'attempts')
if j[1] ~= 'running' or j[2] ~= session then
  return 0
end
local kind = j[3]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- The in-flight list holds at most what this session claimed, so LREM is cheap. (Running
-- jobs have no state index to leave: the in-flight lists are it.)
redis.call('LREM', p .. ':inflight:' .. session, 1, id)

local state, score
if op == 'done' then
  redis.call('HSET', key, 'state', 'done', 'finished_at', now, 'state_at', now)
  state, score = 'done', now
elseif op == 'release' then
  -- Back to the head of the ready list, due now; the attempt is not counted.
  local attempts = math.max(tonumber(j[4]) - 1, 0)
  redis.call('HSET', key, 'state', 'queued', 'attempts', attempts, 'run_at', now,
    'state_at', now)
  redis.call('LPUSH', p .. ':ready', id)
  state, score = 'queued', now
elseif op == 'retry' or op == 'dead' then
  local err = ARGV[6]
  redis.call('RPUSH', p .. ':hist:' .. id, cjson.encode({at = now, error = err, worker = name}))
  if op == 'retry' then
    local at = tonumber(ARGV[7])
    redis.call('HSET', key, 'state', 'retrying', 'last_error', err, 'run_at', at,
      'state_at', now)
    if at <= now then
      redis.call('RPUSH', p .. ':ready', id)
    else
      redis.call('ZADD', p .. ':delayed', at, id)
    end
    state, score = 'retrying', now
  else
    redis.call('HSET', key, 'state', 'dead', 'last_error', err, 'finished_at', now,
      'state_at', now)
    state, score = 'dead', now
  end
else
  return redis.error_reply('ack: unknown op ' .. op)
end

redis.call('ZADD', p .. ':s:' .. state, score, id)
redis.call('ZADD', p .. ':s:' .. state .. ':' .. kind, score, id)
return 1
