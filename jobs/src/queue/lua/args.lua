-- args: argument checks (and the gathering of per-key writes, at the end), prepended to every
-- script by `redis.rs` (`script()`).
--
-- Redis does not roll back a script that fails half way: every write made before the error
-- stays. So each script checks ALL of its arguments with these helpers before its first write;
-- a malformed call fails whole, with an error naming the script and the argument, and leaves
-- nothing behind (an enqueue must never leave a dedupe key pointing at a job that was not
-- created: Twilio's redeliveries would be answered "duplicate" and the work never done).
--
-- Each helper raises `ERR moked <script>: ARGV[i] <what>, got "<value>"` on a bad value and
-- returns the value otherwise (converted where it says so).

local function bad_arg(script, i, what)
  error({err = 'ERR moked ' .. script .. ': ARGV[' .. i .. '] ' .. what .. ', got '
    .. string.format('%q', tostring(ARGV[i]))})
end

-- Exactly `n` arguments.
local function arg_count(script, n)
  if #ARGV ~= n then
    error({err = 'ERR moked ' .. script .. ': expected ' .. n .. ' arguments, got ' .. #ARGV})
  end
end

-- A non-empty string (prefixes, sessions, ids, kinds, tokens).
local function word_arg(script, i)
  local v = ARGV[i]
  if v == nil or v == '' then
    bad_arg(script, i, 'must not be empty')
  end
  return v
end

-- Any string, empty included (errors, optional ids).
local function text_arg(script, i)
  if ARGV[i] == nil then
    bad_arg(script, i, 'is missing')
  end
  return ARGV[i]
end

-- An integer (at most 20 characters) within `min` and `max` when given, returned as a number.
-- Only plain digits: `tonumber` alone would take '1e3', '0x10', ' 5' and 'inf'.
local function int_arg(script, i, min, max)
  local v = ARGV[i]
  if v == nil or not string.match(v, '^%-?%d+$') or #v > 20 then
    bad_arg(script, i, 'must be an integer')
  end
  local n = tonumber(v)
  if min and n < min then
    bad_arg(script, i, 'must be at least ' .. min)
  end
  if max and n > max then
    bad_arg(script, i, 'must be at most ' .. max)
  end
  return n
end

-- '' (returned as nil) or an integer as `int_arg` takes it.
local function opt_int_arg(script, i, min)
  if ARGV[i] == '' then
    return nil
  end
  return int_arg(script, i, min)
end

-- The prefix, then six arguments for each of 1 to 1,000 items (jobs, acks): the shape of the
-- batched scripts. The cap keeps their gathered writes (two values an item in one command)
-- within Lua's unpack limit (~8,000); callers send at most 128.
local function batch_args(script, item)
  if #ARGV < 7 or (#ARGV - 1) % 6 ~= 0 then
    error({err = 'ERR moked ' .. script .. ': expected the prefix and six arguments per '
      .. item .. ', got ' .. #ARGV .. ' arguments'})
  end
  local n = (#ARGV - 1) / 6
  if n > 1000 then
    error({err = 'ERR moked ' .. script .. ': at most 1000 ' .. item .. 's a call, got ' .. n})
  end
end

-- One of the listed words.
local function one_of_arg(script, i, allowed)
  local v = ARGV[i]
  for _, a in ipairs(allowed) do
    if v == a then
      return v
    end
  end
  bad_arg(script, i, 'must be one of ' .. table.concat(allowed, ', '))
end

-- Gathered writes: scripts that touch one index per job collect the members per key here and
-- write each key once at the end (`write_gathered`), one command a key instead of one a job.
-- `gather(lists, key, a [, b])` appends a (and b: a score before its member) to key's list.
local function gather(lists, key, a, b)
  local list = lists[key]
  if not list then
    list = {}
    lists[key] = list
  end
  list[#list + 1] = a
  if b ~= nil then
    list[#list + 1] = b
  end
end

-- One `command key member…` per gathered key. Each caller bounds its lists below Lua's unpack
-- limit (~8,000 values) by its argument checks.
local function write_gathered(command, lists)
  for key, list in pairs(lists) do
    redis.call(command, key, unpack(list))
  end
end
