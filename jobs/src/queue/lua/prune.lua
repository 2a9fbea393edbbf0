-- prune: delete finished jobs of the given states: those whose state_at (when they finished) is
-- before a time and, with a cap, every one but the newest `keep` of each state (oldest first).
--
-- ARGV: 1 prefix, 2 before ms (exclusive), 3 batch size, 4 keep ('' = no cap), 5… states
--       (done, discarded, dead)
-- Returns {deleted, scanned}; the caller repeats while scanned == batch. Deleting a job removes
-- its hash, its history and its index entries (not its dedupe key, which expires on its own).
-- An index member whose job is not in that state (only possible after manual edits) loses only
-- the index entry, never the job.
--
-- The cap is taken from the index's order (state_at, then id), the same order listings show:
-- ZREVRANGE from position `keep` on is exactly what lies beyond the newest `keep`.
local S = 'prune'
local p = word_arg(S, 1)
int_arg(S, 2)
local batch = int_arg(S, 3, 1, 7000)
local keep = opt_int_arg(S, 4, 0)
if #ARGV < 5 then
  error({err = 'ERR moked prune: expected at least one state'})
end
for i = 5, #ARGV do
  one_of_arg(S, i, {'done', 'discarded', 'dead'})
end

local deleted, scanned = 0, 0
local function delete(st, index, ids)
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

for i = 5, #ARGV do
  local st = ARGV[i]
  local index = p .. ':s:' .. st
  if scanned < batch then
    delete(st, index, redis.call('ZRANGEBYSCORE', index, '-inf', '(' .. ARGV[2], 'LIMIT', 0,
      batch - scanned))
  end
  if keep and scanned < batch then
    delete(st, index, redis.call('ZREVRANGE', index, keep, keep + batch - scanned - 1))
  end
end
return {deleted, scanned}
