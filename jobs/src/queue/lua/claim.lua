-- claim: hand up to `max` jobs to a worker session, atomically marking each one running.
--
-- ARGV: 1 prefix, 2 session, 3 worker name, 4 max, 5 promote limit, 6 claim token,
--       7 popped id ('' = none): an id BLMOVE already moved into this session's in-flight list,
--       8 lost claims ('' = none): space-separated tokens of earlier calls whose reply never
--         arrived; '-' alone asks only for the unmarked-id sweep (see step 2).
-- Returns {next_due, now, id, kind, payload, attempts, created_at, id, …}: five fields per
-- lease after two header fields. next_due is the run_at (ms) of the earliest delayed job, or
-- 0; it is only looked up when nothing was claimed (the caller sizes its blocking wait by it).
--
-- Every step is bounded: the sweep reads one session's in-flight list (at most what that
-- session holds), promotion moves at most `promote limit` ids (well below Lua's ~8,000
-- unpack limit), and the claim pops at most `max` ids.
local S = 'claim'
arg_count(S, 8)
local p, session, name = word_arg(S, 1), word_arg(S, 2), text_arg(S, 3)
-- Both are unpacked into one command at most: Lua's unpack limit (~8,000) bounds them.
local max = int_arg(S, 4, 1, 7000)
local promote = int_arg(S, 5, 1, 7000)
local token = word_arg(S, 6)
local popped, lost_tokens = text_arg(S, 7), text_arg(S, 8)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Formatted once (see enqueue.lua: a number handed to redis.call is printed every time).
local now_s = string.format('%d', now)
local ready = p .. ':ready'
local delayed = p .. ':delayed'
local inflight = p .. ':inflight:' .. session

-- A fetch is also a sign of life: a session that fetches is registered even before its first
-- heartbeat, so recover_abandoned always finds its in-flight list.
redis.call('ZADD', p .. ':sessions', now_s, session)
redis.call('HSET', p .. ':session-names', session, name)

local out = {0, now}
local n = 0

local function lease(id, kind, payload, attempts, created_at)
  out[#out + 1] = id
  out[#out + 1] = kind
  out[#out + 1] = payload
  out[#out + 1] = attempts
  out[#out + 1] = created_at
  n = n + 1
end

-- Fields read for every candidate: 1 state, 2 kind, 3 payload, 4 attempts, 5 created_at,
-- 6 session, 7 claim.
local FIELDS = {'state', 'kind', 'payload', 'attempts', 'created_at', 'session', 'claim'}
local function read(id)
  return redis.call('HMGET', p .. ':job:' .. id, unpack(FIELDS))
end

-- The state indexes the marked jobs leave, each with its ids: one ZREM per index at the end of
-- the call instead of two per job (nothing in this script reads an index before then).
local unindexed = {}

-- Marks a queued or retrying job running for this session: one more attempt, out of its
-- state index, the claim token stamped (so a lost reply can be found again). Running jobs
-- have no index of their own: the in-flight lists are it.
local function mark(id, j)
  local st, kind = j[1], j[2]
  local attempts = tonumber(j[4]) + 1
  redis.call('HSET', p .. ':job:' .. id, 'state', 'running', 'attempts', string.format('%d', attempts),
    'started_at', now_s, 'state_at', now_s, 'session', session, 'claim', token)
  gather(unindexed, p .. ':s:' .. st, id)
  gather(unindexed, p .. ':s:' .. st .. ':' .. kind, id)
  lease(id, kind, j[3], attempts, j[5])
end

local function claimable(j)
  return j[1] == 'queued' or j[1] == 'retrying'
end

-- 1. The id a blocking pop moved here. If it is no longer claimable (an operator discarded
--    it meanwhile), drop it from the in-flight list.
if popped ~= '' then
  local id = popped
  local j = read(id)
  if claimable(j) then
    mark(id, j)
  elseif not (j[1] == 'running' and j[6] == session) then
    redis.call('LREM', inflight, 1, id)
  end
end

-- 2. Resync after a failed call: re-deliver jobs this session claimed under a lost token, and
--    mark ids a blocking pop moved here whose mark never happened. Both can only exist in
--    this session's own in-flight list.
if lost_tokens ~= '' then
  local lost = {}
  for tok in string.gmatch(lost_tokens, '%S+') do
    lost[tok] = true
  end
  for _, id in ipairs(redis.call('LRANGE', inflight, 0, -1)) do
    if n >= max then
      break
    end
    local j = read(id)
    if j[1] == 'running' and j[6] == session then
      if j[7] and lost[j[7]] then
        redis.call('HSET', p .. ':job:' .. id, 'claim', token)
        lease(id, j[2], j[3], tonumber(j[4]), j[5])
      end
    elseif claimable(j) then
      mark(id, j)
    else
      redis.call('LREM', inflight, 1, id)
    end
  end
end

-- 3. Promote due delayed jobs, at most `promote limit` per call (never the whole due set: the
--    apalis wedge). Promoted jobs keep their state (queued or retrying).
local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now_s, 'LIMIT', 0, promote)
if #due > 0 then
  redis.call('RPUSH', ready, unpack(due))
  redis.call('ZREM', delayed, unpack(due))
end

-- 4. Claim from the head of the ready list. Ids whose job is not claimable (deleted, or
--    discarded by an operator) are dropped on the way.
local claimed = {}
while n < max do
  local ids = redis.call('LPOP', ready, max - n)
  if not ids then
    break
  end
  for _, id in ipairs(ids) do
    local j = read(id)
    if claimable(j) then
      mark(id, j)
      claimed[#claimed + 1] = id
    end
  end
end
if #claimed > 0 then
  redis.call('RPUSH', inflight, unpack(claimed))
end
-- At most `max` ids an index (≤ 7,000: within unpack's limit).
write_gathered('ZREM', unindexed)

if n == 0 then
  local next_due = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
  if next_due[2] then
    out[1] = tonumber(next_due[2])
  end
end
return out
