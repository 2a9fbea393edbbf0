-- recover: return the in-flight jobs of silent (or deregistering) sessions to the ready list.
--
-- ARGV: 1 prefix, 2 stale ms, 3 budget (ids per call), 4 session ('' = every session whose
--       last sign of life is at least `stale ms` old; set = this session now, on deregister)
-- Returns {moved, more}: more = 1 when the budget ran out or more stale sessions may remain,
-- so the caller calls again.
--
-- For each session, ids are popped from its in-flight list in chunks:
-- * running for that session: back to the head of the ready list as queued, due now, with a
--   history entry "abandoned by worker NAME (…)"; the attempt stays counted.
-- * queued or retrying: a blocking pop moved it here but the worker never marked it running
--   (it crashed in between); it goes back to the ready list as it is.
-- * anything else (finished, or gone): dropped from the list.
-- A session whose list is empty is forgotten. A session cut off by the budget keeps the rest
-- of its list and is finished by the next call.
local S = 'recover'
arg_count(S, 4)
local p = word_arg(S, 1)
local stale = int_arg(S, 2, 0)
local budget = int_arg(S, 3, 1)
local only = text_arg(S, 4)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local sessions_key = p .. ':sessions'
local names_key = p .. ':session-names'
local ready = p .. ':ready'
local SESSIONS_PER_CALL = 100

local sessions
if only ~= '' then
  sessions = {only}
else
  sessions = redis.call('ZRANGEBYSCORE', sessions_key, '-inf', now - stale,
    'LIMIT', 0, SESSIONS_PER_CALL)
end

local moved = 0
for _, s in ipairs(sessions) do
  local name = redis.call('HGET', names_key, s) or s
  local reason
  if only ~= '' then
    reason = 'abandoned by worker ' .. name .. ' (deregistered while running)'
  else
    local seen = tonumber(redis.call('ZSCORE', sessions_key, s)) or now
    reason = 'abandoned by worker ' .. name .. ' (no heartbeat for '
      .. math.floor((now - seen) / 1000) .. 's)'
  end
  local entry = cjson.encode({at = now, error = reason, worker = name})
  local list = p .. ':inflight:' .. s
  while true do
    if budget <= 0 then
      return {moved, 1}
    end
    local ids = redis.call('LPOP', list, math.min(budget, 100))
    if not ids then
      break
    end
    budget = budget - #ids
    for _, id in ipairs(ids) do
      local key = p .. ':job:' .. id
      local j = redis.call('HMGET', key, 'state', 'session', 'kind')
      if j[1] == 'running' and j[2] == s then
        local kind = j[3]
        redis.call('RPUSH', p .. ':hist:' .. id, entry)
        redis.call('HSET', key, 'state', 'queued', 'last_error', reason, 'run_at', now,
          'state_at', now)
        redis.call('ZADD', p .. ':s:queued', now, id)
        redis.call('ZADD', p .. ':s:queued:' .. kind, now, id)
        redis.call('LPUSH', ready, id)
        moved = moved + 1
      elseif j[1] == 'queued' or j[1] == 'retrying' then
        redis.call('LPUSH', ready, id)
        moved = moved + 1
      end
    end
  end
  redis.call('ZREM', sessions_key, s)
  redis.call('HDEL', names_key, s)
end

local more = 0
if only == '' and #sessions == SESSIONS_PER_CALL then
  more = 1
end
return {moved, more}
