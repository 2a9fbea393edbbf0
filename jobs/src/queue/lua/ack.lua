-- ack: end a running job's attempt: done, retry (retrying at a time), dead, or release.
--
-- ARGV: 1 prefix, 2 session, 3 worker name, 4 id, 5 op ('done' | 'retry' | 'dead' |
--       'release'), 6 error (retry, dead), 7 next run ms (retry)
-- Returns 1 when the job moved, 0 when the ack was stale: the job is not running, or is
-- running for another session (it was recovered from this session and claimed again). A
-- stale ack changes nothing; the current owner's ack is the one that counts.
local S = 'ack'
arg_count(S, 7)
local p, session, name, id = word_arg(S, 1), word_arg(S, 2), text_arg(S, 3), word_arg(S, 4)
-- Checked before any write: an unknown op found after the LREM below would leave the job
-- running but out of its session's in-flight list, where recovery never looks.
local op = one_of_arg(S, 5, {'done', 'retry', 'dead', 'release'})
local err = text_arg(S, 6)
local at = int_arg(S, 7)
local key = p .. ':job:' .. id
local j = redis.call('HMGET', key, 'state', 'session', 'kind', 'attempts')
if j[1] ~= 'running' or j[2] ~= session then
  return 0
end
local kind = j[3]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Formatted once (see enqueue.lua: a number handed to redis.call is printed every time).
local now_s = string.format('%d', now)

-- The in-flight list holds at most what this session claimed, so LREM is cheap. (Running
-- jobs have no state index to leave: the in-flight lists are it.)
redis.call('LREM', p .. ':inflight:' .. session, 1, id)

local state, score
if op == 'done' then
  redis.call('HSET', key, 'state', 'done', 'finished_at', now_s, 'state_at', now_s)
  state, score = 'done', now_s
elseif op == 'release' then
  -- Back to the head of the ready list, due now; the attempt is not counted.
  local attempts = math.max(tonumber(j[4]) - 1, 0)
  redis.call('HSET', key, 'state', 'queued', 'attempts', string.format('%d', attempts),
    'run_at', now_s, 'state_at', now_s)
  redis.call('LPUSH', p .. ':ready', id)
  state, score = 'queued', now_s
else
  redis.call('RPUSH', p .. ':hist:' .. id, cjson.encode({at = now, error = err, worker = name}))
  if op == 'retry' then
    redis.call('HSET', key, 'state', 'retrying', 'last_error', err, 'run_at', ARGV[7],
      'state_at', now_s)
    if at <= now then
      redis.call('RPUSH', p .. ':ready', id)
    else
      redis.call('ZADD', p .. ':delayed', ARGV[7], id)
    end
    state, score = 'retrying', now_s
  else
    redis.call('HSET', key, 'state', 'dead', 'last_error', err, 'finished_at', now_s,
      'state_at', now_s)
    state, score = 'dead', now_s
  end
end

redis.call('ZADD', p .. ':s:' .. state, score, id)
redis.call('ZADD', p .. ':s:' .. state .. ':' .. kind, score, id)
return 1
