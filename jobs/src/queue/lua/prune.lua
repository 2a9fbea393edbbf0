-- prune: delete done and discarded jobs whose state_at (when they finished) is before a time.
--
-- ARGV: 1 prefix, 2 before ms (exclusive), 3 batch size
-- Returns {deleted, scanned}; the caller repeats while scanned == batch. Deleting a job removes
-- its hash, its history and its index entries. An index member whose job is not in that state
-- (only possible after manual edits) loses only the index entry, never the job.
local p = ARGV[1]
local batch = tonumber(ARGV[3])
local deleted, scanned = 0, 0
for _, st in ipairs({'done', 'discarded'}) do
  if scanned >= batch then
    break
  end
  local index = p .. ':s:' .. st
  local ids = redis.call('ZRANGEBYSCORE', index, '-inf', '(' .. ARGV[2], 'LIMIT', 0,
    batch - scanned)
  scanned = scanned + #ids
  for _, id in ipairs(ids) do
    local key = p .. ':job:' .. id
    local j = redis.call('HMGET', key, 'state', 'kind')
    if j[1] == st then
      redis.call('DEL', key, p .. ':hist:' .. id)
      redis.call('ZREM', p .. ':s:' .. st .. ':' .. j[2], id)
      deleted = deleted + 1
    end
    redis.call('ZREM', index, id)
  end
end
return {deleted, scanned}
