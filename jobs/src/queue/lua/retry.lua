-- retry: operator retry of dead or retrying jobs: queued, due now, with a fresh retry schedule
-- (attempts back to 0); the history of earlier attempts is kept.
--
-- ARGV: 1 prefix, 2 mode ('id' | 'all'), 3 the id (mode id) or the state, dead or retrying
--       (mode all), 4 kind ('' = any; mode all), 5 batch size (mode all)
-- Returns {moved, scanned}. Mode all looks at the first `batch` members of the state's index;
-- the caller repeats while scanned == batch. Index members whose job is not in that state
-- (only possible after manual edits) are removed, so every call makes progress.
local S = 'retry'
arg_count(S, 5)
local p = word_arg(S, 1)
local mode = one_of_arg(S, 2, {'id', 'all'})
local target
if mode == 'id' then
  target = word_arg(S, 3)
else
  target = one_of_arg(S, 3, {'dead', 'retrying'})
end
local kind_filter = text_arg(S, 4)
local batch = int_arg(S, 5, 1)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ready = p .. ':ready'

local ids, index
if mode == 'id' then
  ids = {target}
else
  index = p .. ':s:' .. target
  if kind_filter ~= '' then
    index = index .. ':' .. kind_filter
  end
  ids = redis.call('ZRANGE', index, 0, batch - 1)
end

local moved = 0
for _, id in ipairs(ids) do
  local key = p .. ':job:' .. id
  local j = redis.call('HMGET', key, 'state', 'kind')
  local st, kind = j[1], j[2]
  if (st == 'dead' or st == 'retrying') and (mode == 'id' or st == target) then
    -- A dead job is in no list. A retrying job waits in the delayed set, unless it is already
    -- due and was promoted: then it is in the ready list and keeps its place there.
    if st == 'dead' or redis.call('ZREM', p .. ':delayed', id) == 1 then
      redis.call('RPUSH', ready, id)
    end
    redis.call('HSET', key, 'state', 'queued', 'run_at', now, 'state_at', now, 'attempts', 0)
    redis.call('ZREM', p .. ':s:' .. st, id)
    redis.call('ZREM', p .. ':s:' .. st .. ':' .. kind, id)
    redis.call('ZADD', p .. ':s:queued', now, id)
    redis.call('ZADD', p .. ':s:queued:' .. kind, now, id)
    moved = moved + 1
  elseif index then
    redis.call('ZREM', index, id)
  end
end
return {moved, #ids}
