-- held: the jobs one session holds, for the runner's reconciliation.
--
-- ARGV: 1 prefix, 2 session
-- Returns the ids in the session's in-flight list whose job is running for that session. Ids a
-- blocking pop moved but nobody marked yet (still queued) are left out: the session's next
-- fetch marks them, and recovery takes them if the session dies.
arg_count('held', 2)
local p, session = word_arg('held', 1), word_arg('held', 2)
local out = {}
for _, id in ipairs(redis.call('LRANGE', p .. ':inflight:' .. session, 0, -1)) do
  local j = redis.call('HMGET', p .. ':job:' .. id, 'state', 'session')
  if j[1] == 'running' and j[2] == session then
    out[#out + 1] = id
  end
end
return out
