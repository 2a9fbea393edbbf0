-- heartbeat: register or refresh a worker session, stamped with the Redis clock.
--
-- ARGV: 1 prefix, 2 session, 3 worker name
arg_count('heartbeat', 3)
local p, session = word_arg('heartbeat', 1), word_arg('heartbeat', 2)
local name = text_arg('heartbeat', 3)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', p .. ':sessions', now, session)
redis.call('HSET', p .. ':session-names', session, name)
return now
