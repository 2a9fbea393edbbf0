-- wrk script: Twilio webhooks as Twilio sends them, each signed on the fly and each with a sid
-- no earlier request had (so a target that de-duplicates by sid is never flattered by repeats).
--
--   wrk -t2 -c64 -d20s -s bench/harness/twilio.lua http://127.0.0.1:8001 -- [key=value ...]
--
--   token=T        Auth Token (default bench-auth-token-0123456789abcdef)
--   sign_base=URL  the public base URL the signature covers (default: the target's base URL)
--   mix=cs,wa,ic   the endpoints, cycled request by request: cs /webhook/call_status,
--                  wa /webhook/whatsapp/status, ic /webhook/incoming_call (default all three)
--   badsig=N       every Nth request carries a wrong signature (default 0: none)
--   tag=8HEX       the run tag at the start of every sid (default: random)
--
-- A sid is CA/SM + 32 hex: the 8-hex run tag, a 4-hex thread number, a 20-hex counter.
-- The signature is Twilio's: base64(HMAC-SHA1(token, url + every name+value, names sorted)).
-- HMAC and base64 come from OpenSSL's libcrypto through LuaJIT's FFI (Debian's wrk links it):
-- per request only two concatenations around the sid and one HMAC.
-- At the end one line: RESULT requests= rps= p50_ms= p90_ms= p99_ms= p999_ms= max_ms=
-- err_connect= err_read= err_write= err_status= err_timeout= (latency under saturation: wrk's
-- closed loop). No response() callback: it would make wrk parse every answer's body.

local ffi = require("ffi")

ffi.cdef([[
typedef struct evp_md_st EVP_MD;
const EVP_MD *EVP_sha1(void);
unsigned char *HMAC(const EVP_MD *md, const void *key, int key_len, const unsigned char *data,
                    size_t data_len, unsigned char *out, unsigned int *out_len);
int EVP_EncodeBlock(unsigned char *out, const unsigned char *in, int len);
]])

local function libcrypto()
  if pcall(function() return ffi.C.HMAC end) then
    return ffi.C
  end
  for _, name in ipairs({ "libcrypto.so.3", "libcrypto.so", "crypto" }) do
    local ok, lib = pcall(ffi.load, name)
    if ok then
      return lib
    end
  end
  error("libcrypto not found")
end

local crypto = libcrypto()
local sha1 = crypto.EVP_sha1()
local digest = ffi.new("unsigned char[20]")
local digest_len = ffi.new("unsigned int[1]")
local base64 = ffi.new("unsigned char[32]")

local function hmac_sha1_base64(key, data)
  crypto.HMAC(sha1, key, #key, data, #data, digest, digest_len)
  return ffi.string(base64, crypto.EVP_EncodeBlock(base64, digest, digest_len[0]))
end

local function form_escape(s)
  return (s:gsub("[^%w%-%._~ ]", function(c) return string.format("%%%02X", c:byte()) end):gsub(" ", "+"))
end

-- Realistic field sets (Israeli numbers); SID marks where the request's own sid goes.
local SID = {}
local ENDPOINTS = {
  cs = {
    path = "/webhook/call_status", prefix = "CA", fields = {
      { "AccountSid", "AC0123456789abcdef0123456789abcdef" }, { "ApiVersion", "2010-04-01" },
      { "CallSid", SID }, { "CallStatus", "completed" }, { "Called", "+97233334444" },
      { "Caller", "+972501234567" }, { "CallDuration", "42" }, { "Direction", "inbound" },
      { "Duration", "1" }, { "From", "+972501234567" }, { "To", "+97233334444" },
      { "CallbackSource", "call-progress-events" }, { "SequenceNumber", "0" },
      { "Timestamp", "Mon, 07 Dec 2026 10:00:00 +0000" },
    },
  },
  wa = {
    path = "/webhook/whatsapp/status", prefix = "SM", fields = {
      { "AccountSid", "AC0123456789abcdef0123456789abcdef" }, { "ApiVersion", "2010-04-01" },
      { "ChannelPrefix", "whatsapp" }, { "From", "whatsapp:+97233334444" },
      { "MessageSid", SID }, { "MessageStatus", "delivered" }, { "SmsSid", SID },
      { "SmsStatus", "delivered" }, { "StructuredMessage", "false" },
      { "To", "whatsapp:+972501234567" }, { "ChannelToAddress", "+972501234567" },
    },
  },
  ic = {
    path = "/webhook/incoming_call", prefix = "CA", fields = {
      { "AccountSid", "AC0123456789abcdef0123456789abcdef" }, { "ApiVersion", "2010-04-01" },
      { "CallSid", SID }, { "CallStatus", "ringing" }, { "CallToken", '{"parentCallInfo":{}}' },
      { "Called", "+97233334444" }, { "CalledCity", "" }, { "CalledCountry", "IL" },
      { "CalledState", "" }, { "CalledZip", "" }, { "Caller", "+972501234567" },
      { "CallerCity", "" }, { "CallerCountry", "IL" }, { "CallerState", "" }, { "CallerZip", "" },
      { "Direction", "inbound" }, { "From", "+972501234567" }, { "FromCity", "" },
      { "FromCountry", "IL" }, { "FromState", "" }, { "StirVerstat", "TN-Validation-Passed-A" },
      { "To", "+97233334444" }, { "ToCountry", "IL" },
    },
  },
}

-- Splits "what is signed" and the body around the sid once, so a request costs two joins
-- (table.concat(pieces, sid) puts the sid back wherever it occurs: the WhatsApp status carries
-- it twice, as MessageSid and SmsSid).
local function template(endpoint, sign_url)
  local sorted = {}
  for i, f in ipairs(endpoint.fields) do sorted[i] = f end
  table.sort(sorted, function(a, b) return a[1] < b[1] end)
  local signed, body = { sign_url .. endpoint.path }, {}
  local cur = 1
  for _, f in ipairs(sorted) do
    if f[2] == SID then
      signed[cur] = signed[cur] .. f[1]
      cur = cur + 1
      signed[cur] = ""
    else
      signed[cur] = signed[cur] .. f[1] .. f[2]
    end
  end
  local bcur = 1
  body[1] = ""
  for i, f in ipairs(endpoint.fields) do
    local sep = i > 1 and "&" or ""
    if f[2] == SID then
      body[bcur] = body[bcur] .. sep .. f[1] .. "="
      bcur = bcur + 1
      body[bcur] = ""
    else
      body[bcur] = body[bcur] .. sep .. f[1] .. "=" .. form_escape(f[2])
    end
  end
  return { path = endpoint.path, prefix = endpoint.prefix, signed = signed, body = body }
end

local function join(pieces, sid)
  return table.concat(pieces, sid)
end

local next_thread = 0

function setup(thread)
  next_thread = next_thread + 1
  thread:set("thread_no", next_thread)
end

local token, plan, badsig, tag
local count = 0
local headers = {
  ["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8",
  ["User-Agent"] = "TwilioProxy/1.1",
}

function init(args)
  local opts = {}
  for _, a in ipairs(args) do
    local k, v = a:match("^([%w_]+)=(.*)$")
    if k then opts[k] = v end
  end
  token = opts.token or "bench-auth-token-0123456789abcdef"
  badsig = tonumber(opts.badsig or "0")
  math.randomseed(os.time() + thread_no)
  tag = opts.tag or string.format("%08x", math.random(0, 0x7fffffff))
  local base = opts.sign_base or string.format("%s://%s%s", wrk.scheme, wrk.host,
    (wrk.port and wrk.port ~= "" and (":" .. wrk.port)) or "")
  base = base:gsub("/+$", "")
  plan = {}
  for name in (opts.mix or "cs,wa,ic"):gmatch("[^,]+") do
    assert(ENDPOINTS[name], "unknown mix entry " .. name)
    table.insert(plan, template(ENDPOINTS[name], base))
  end
end

function request()
  count = count + 1
  local t = plan[(count - 1) % #plan + 1]
  local hex = string.format("%s%04x%020x", tag, thread_no % 0x10000, count)
  local sid = t.prefix .. hex
  local sig = hmac_sha1_base64(token, join(t.signed, sid))
  if badsig > 0 and count % badsig == 0 then
    sig = (sig:sub(1, 1) == "A" and "B" or "A") .. sig:sub(2)
  end
  headers["X-Twilio-Signature"] = sig
  headers["I-Twilio-Idempotency-Token"] = hex
  return wrk.format("POST", t.path, headers, join(t.body, sid))
end

function done(summary, latency)
  local e = summary.errors
  local ms = function(us) return string.format("%.3f", us / 1000) end
  io.write(string.format(
    "RESULT requests=%d rps=%.1f p50_ms=%s p90_ms=%s p99_ms=%s p999_ms=%s max_ms=%s " ..
    "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    ms(latency:percentile(50)), ms(latency:percentile(90)), ms(latency:percentile(99)),
    ms(latency:percentile(99.9)), ms(latency.max),
    e.connect, e.read, e.write, e.status, e.timeout))
end
