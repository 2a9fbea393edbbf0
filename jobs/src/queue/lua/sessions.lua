-- sessions: every worker session with its last sign of life and the jobs running for it, for
-- the operator console (GET /api/workers).
--
-- ARGV: 1 prefix
-- Returns {{session, name, last_seen_ms, {{id, kind, started_at_ms}, …}}, …}. A job counts
-- for a session only while it is running for that session (as in running.lua); name and
-- started_at are '' when missing.
arg_count('sessions', 1)
local p = word_arg('sessions', 1)
local out = {}
local all = redis.call('ZRANGE', p .. ':sessions', 0, -1, 'WITHSCORES')
for i = 1, #all, 2 do
  local s, seen = all[i], all[i + 1]
  local jobs = {}
  for _, id in ipairs(redis.call('LRANGE', p .. ':inflight:' .. s, 0, -1)) do
    local j = redis.call('HMGET', p .. ':job:' .. id, 'state', 'session', 'kind', 'started_at')
    if j[1] == 'running' and j[2] == s then
      jobs[#jobs + 1] = {id, j[3] or '', j[4] or ''}
    end
  end
  out[#out + 1] = {s, redis.call('HGET', p .. ':session-names', s) or '', seen, jobs}
end
return out
