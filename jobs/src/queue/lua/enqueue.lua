-- enqueue: create a batch of jobs in one call, or, for each job whose dedupe key is taken,
-- return the job that owns it (nothing is created for that one).
--
-- ARGV: 1 prefix, then six per job:
--       id, kind, payload, run_at ms ('' = due now), dedupe key ('' = none), dedupe ttl ms
-- Returns the jobs whose dedupe key was taken, flat: {position, owner id, ...} (position
-- 0-based in the batch); every job not named was created. Naming only those keeps the usual
-- answer (nothing taken) an empty array, which the caller reads for free.
--
-- Jobs are handled in ARGV order, so a dedupe key repeated within one batch goes to the first
-- job that carries it. The list and set writes are gathered and made once per batch (one RPUSH
-- keeps the batch's FIFO order): most of a single job's cost was the per-command overhead.
local S = 'enqueue'
local p = word_arg(S, 1)
batch_args(S, 'job')
-- Every job's arguments are checked before the first write (see args.lua): a bad run_at or
-- TTL in the middle of a batch must not leave the jobs before it, or their dedupe keys.
local run_ats = {}
for i = 2, #ARGV, 6 do
  word_arg(S, i)
  word_arg(S, i + 1)
  text_arg(S, i + 2)
  run_ats[i] = opt_int_arg(S, i + 3)
  if text_arg(S, i + 4) ~= '' then
    int_arg(S, i + 5, 1)
  end
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Times go to Redis as the strings they came in (or formatted once here as an integer): a Lua
-- number handed to redis.call is printed with '%.14g' every time, which was ~15% of this
-- script's CPU (four times a job).
local now_s = string.format('%d', now)

local taken, ready, delayed, indexed = {}, {}, {}, {}
for i = 2, #ARGV, 6 do
  local id, kind, payload, key, ttl = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 4],
    ARGV[i + 5]
  -- SET NX GET (Redis >= 7.0) claims the key and tells us its owner in one step.
  local owner = false
  if key ~= '' then
    owner = redis.call('SET', p .. ':dedupe:' .. key, id, 'NX', 'PX', ttl, 'GET')
  end
  if owner then
    taken[#taken + 1] = (i - 2) / 6
    taken[#taken + 1] = owner
  else
    local run_at = run_ats[i] or now
    local run_at_s = run_ats[i] and ARGV[i + 3] or now_s
    redis.call('HSET', p .. ':job:' .. id,
      'kind', kind, 'payload', payload, 'state', 'queued', 'attempts', '0',
      'created_at', now_s, 'run_at', run_at_s, 'state_at', now_s)
    -- Due jobs go straight to the tail of the ready list (FIFO, and it wakes blocked
    -- fetchers); future ones wait in the delayed set until a fetch promotes them.
    if run_at <= now then
      ready[#ready + 1] = id
    else
      delayed[#delayed + 1] = run_at_s
      delayed[#delayed + 1] = id
    end
    -- The queued index is scored by run_at (not state_at): its lowest member is the most
    -- overdue job, which gives `oldest_queued_age_s` in O(log n).
    gather(indexed, p .. ':s:queued', run_at_s, id)
    gather(indexed, p .. ':s:queued:' .. kind, run_at_s, id)
  end
end

if #ready > 0 then
  redis.call('RPUSH', p .. ':ready', unpack(ready))
end
if #delayed > 0 then
  redis.call('ZADD', p .. ':delayed', unpack(delayed))
end
write_gathered('ZADD', indexed)
return taken
