-- running: every running job, read from the sessions' in-flight lists.
--
-- Running jobs have no state index: a claim and its ack would each pay two sorted-set writes
-- per job for it, on the hottest path, while the in-flight lists already hold exactly the
-- claimed ids. This walk is O(jobs in flight), which is bounded by the workers' concurrency,
-- not by the size of the queue.
--
-- ARGV: 1 prefix, 2 kind ('' = any)
-- Returns {id, kind, started_at, id, …} for jobs running for the session whose list holds them
-- (ids a blocking pop moved but nobody marked yet are still queued and are left out).
arg_count('running', 2)
local p, only = word_arg('running', 1), text_arg('running', 2)
local out = {}
for _, s in ipairs(redis.call('ZRANGE', p .. ':sessions', 0, -1)) do
  for _, id in ipairs(redis.call('LRANGE', p .. ':inflight:' .. s, 0, -1)) do
    local j = redis.call('HMGET', p .. ':job:' .. id, 'state', 'session', 'kind', 'started_at')
    if j[1] == 'running' and j[2] == s and (only == '' or j[3] == only) then
      out[#out + 1] = id
      out[#out + 1] = j[3]
      out[#out + 1] = j[4]
    end
  end
end
return out
