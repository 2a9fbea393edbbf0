-- heartbeat: register or refresh a worker session, stamped with the Redis clock.
--
-- ARGV: 1 prefix, 2 session, 3 worker name
local p = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', p .. ':sessions', now, ARGV[2])
redis.call('HSET', p .. ':session-names', ARGV[2], ARGV[3])
return now
