-- ack: end running jobs' attempts, each one: done, retry (retrying at a time), dead, or release.
-- Concurrent acks of a process are gathered into one call (redis_batch.rs).
--
-- ARGV: 1 prefix, then six per ack: session, worker name, id, op ('done' | 'retry' | 'dead' |
--       'release'), error (retry, dead), next run ms (retry; '0' otherwise)
-- Returns one number per ack, in order: 1 when the job moved, 0 when the ack was stale: the job
-- is not running, or is running for another session (it was recovered from that session and
-- claimed again). A stale ack changes nothing; the current owner's ack is the one that counts.
local S = 'ack'
local p = word_arg(S, 1)
batch_args(S, 'ack')
-- Every ack's arguments are checked before the first write (see args.lua): an unknown op
-- found after the LREM below would leave the job running but out of its session's in-flight
-- list, where recovery never looks.
local OPS = {'done', 'retry', 'dead', 'release'}
for i = 2, #ARGV, 6 do
  word_arg(S, i)
  text_arg(S, i + 1)
  word_arg(S, i + 2)
  one_of_arg(S, i + 3, OPS)
  text_arg(S, i + 4)
  int_arg(S, i + 5)
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Formatted once (see enqueue.lua: a number handed to redis.call is printed every time).
local now_s = string.format('%d', now)

-- The state indexes the acked jobs enter, each with its (score, id) pairs: one ZADD per index at
-- the end of the call instead of two per job (nothing in this script reads an index).
local indexed = {}

local function ack(session, name, id, op, err, at_s)
  local key = p .. ':job:' .. id
  local j = redis.call('HMGET', key, 'state', 'session', 'kind', 'attempts')
  if j[1] ~= 'running' or j[2] ~= session then
    return 0
  end
  local kind = j[3]

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
      redis.call('HSET', key, 'state', 'retrying', 'last_error', err, 'run_at', at_s,
        'state_at', now_s)
      if tonumber(at_s) <= now then
        redis.call('RPUSH', p .. ':ready', id)
      else
        redis.call('ZADD', p .. ':delayed', at_s, id)
      end
      state, score = 'retrying', now_s
    else
      redis.call('HSET', key, 'state', 'dead', 'last_error', err, 'finished_at', now_s,
        'state_at', now_s)
      state, score = 'dead', now_s
    end
  end

  gather(indexed, p .. ':s:' .. state, score, id)
  gather(indexed, p .. ':s:' .. state .. ':' .. kind, score, id)
  return 1
end

local moved = {}
for i = 2, #ARGV, 6 do
  moved[#moved + 1] = ack(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4],
    ARGV[i + 5])
end
-- At most 1,000 acks a call (batch_args): 2,000 values an index at most.
write_gathered('ZADD', indexed)
return moved
