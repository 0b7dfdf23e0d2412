-- reserve.lua: check caps and spacing, and reserve one send slot on the first candidate
-- with room, atomically, in one round trip. Mode "usage" only reads the same counters.
-- Mirrors worker/limiter/policy.py (choose, free_at, try_order) and
-- worker/limiter/timezones.py (window ids, end_from_table): change them together.
--
-- Clock: now = redis.call('TIME') (the Redis server's clock, shared by every worker), or,
-- when ARGV[2] == "1" and KEYS[1] exists, the test clock stored there (unix seconds).
--
-- KEYS are *prefixes* for the counters: the script appends ":<window_id>" itself, because
-- the window depends on its own clock. Every key carries the {zd} hash tag (one Cluster slot).
--   KEYS[1]        {zd}:clock                       test clock, unix seconds (string); read only
--   KEYS[2]        {zd}:last:phone:<phone>          last reserve for the recipient, unix seconds
--                                                   (usage mode: ignored, any {zd} key)
--   then per candidate i = 1..n (n = (#KEYS - 3) / 3), in preference order:
--   KEYS[3i]       {zd}:sent:hour:<instance>        -> {zd}:sent:hour:<instance>:<hour_window>
--                  integer counter, expires (hour window end + 3600 s)
--   KEYS[3i+1]     {zd}:sent:day:<instance>         -> {zd}:sent:day:<instance>:<day_window>
--                  integer counter, expires (day window end + 86400 s)
--   KEYS[3i+2]     {zd}:last:instance:<instance>    last reserve on the instance, unix seconds
--   Last-send stamps are "%.6f" strings with a TTL of ARGV[6] s, written only when the
--   matching rule is on (gap > 0, interval > 0).
--   KEYS[#KEYS]    {zd}:counters:sentinel           exists while the counters can be trusted
--                  (set by rebuild.lua after rebuilding them from PostgreSQL); without it a
--                  reserve grants nothing and answers "rebuild"
--
-- ARGV[1]   "reserve" | "usage"
-- ARGV[2]   "1" to honour the test clock in KEYS[1], else "0"
-- ARGV[3]   strict: how many leading candidates are tried in the given order (0 or 1);
--           the rest by increasing load = max(hour/hourly_cap, day/daily_cap), then order
-- ARGV[4]   recipient minimum gap, seconds (0 = off)
-- ARGV[5]   instance pacing interval for this call, seconds, jitter already drawn (0 = off)
-- ARGV[6]   TTL of last-send stamps, whole seconds
-- ARGV[7]   table valid from, unix seconds     now outside [from, until) -> "stale" answer
-- ARGV[8]   table valid until, unix seconds
-- ARGV[9]   m, number of offset-table pairs
-- ARGV[10 .. 9+2m]    pairs utc_from (unix s), offset (s): local = utc + offset from utc_from on
-- ARGV[10+2m]         caps, packed: "hourly_cap_1,daily_cap_1,...,hourly_cap_n,daily_cap_n"
--                     (one string: one argument per cap cost more to encode than the call)
--
-- Windows: local = now + offset(now); hour_window = floor(local/3600),
-- day_window = floor(local/86400). A window ends at the first second its id changes:
-- (window+1)*len - offset, using the offset valid at the end when a transition falls inside
-- the window (spring forward: ends at the jump; fall back: the repeated local hour is one
-- 2-hour window and that day lasts 25 h). Expiry is set with EXPIRE relative to the script's
-- clock (end + margin - now), so it also holds under a test clock far from the server's.
--
-- Returns (floats as "%.6f" strings, integers as integers):
--   {"ok", now, index, hour_window, day_window, hour_count, day_count}  reserved on KEYS-
--        candidate `index` (1-based); counts after reserving
--   {"full", now, retry_at, reason}  nothing reserved; reason "caps" | "pacing" |
--        "recipient_gap"; retry_at = earliest second a slot could free up
--   {"stale", now}   now is outside the offset table; rebuild it around now and call again
--   {"rebuild", now} (reserve mode) the counters sentinel is gone: Redis lost its data;
--                    rebuild the counters (rebuild.lua) and call again
--   {"usage", now, hour_count_1, day_count_1, ..., hour_count_n, day_count_n}  (usage mode)

if redis.replicate_commands then redis.replicate_commands() end -- Redis < 5: TIME, then write

local function fmt(x) return string.format('%.6f', x) end

local function clock()
  if ARGV[2] == '1' then
    local stored = redis.call('GET', KEYS[1])
    if stored then return tonumber(stored) end
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local now = clock()
if now < tonumber(ARGV[7]) or now >= tonumber(ARGV[8]) then return {'stale', fmt(now)} end
if ARGV[1] == 'reserve' and redis.call('EXISTS', KEYS[#KEYS]) == 0 then
  return {'rebuild', fmt(now)}
end

local m = tonumber(ARGV[9])
local froms, offsets = {}, {}
for j = 1, m do
  froms[j] = tonumber(ARGV[8 + 2 * j])
  offsets[j] = tonumber(ARGV[9 + 2 * j])
end
local segment = 1
for j = 1, m do if froms[j] <= now then segment = j end end

local function window_of(offset, t, len) return math.floor((t + offset) / len) end

local function window_end(len)
  local window = window_of(offsets[segment], now, len)
  for j = segment, m do
    if j > segment and window_of(offsets[j], froms[j], len) ~= window then return froms[j] end
    local e = (window + 1) * len - offsets[j]
    if j == m or e < froms[j + 1] then return e end
  end
end

local hw = window_of(offsets[segment], now, 3600)
local dw = window_of(offsets[segment], now, 86400)
local n = (#KEYS - 3) / 3
local caps_base = 9 + 2 * m

local function mget(names)
  local out = {}
  for s = 1, #names, 4000 do
    local part = redis.call('MGET', unpack(names, s, math.min(s + 3999, #names)))
    for j = 1, #part do out[#out + 1] = tonumber(part[j]) or 0 end
  end
  return out
end

local names = {}
for i = 1, n do
  names[2 * i - 1] = KEYS[3 * i] .. ':' .. hw
  names[2 * i] = KEYS[3 * i + 1] .. ':' .. dw
end
local counts = mget(names)

if ARGV[1] == 'usage' then
  local out = {'usage', fmt(now)}
  for j = 1, #counts do out[j + 2] = counts[j] end
  return out
end

local gap = tonumber(ARGV[4])
if gap > 0 then
  local last = tonumber(redis.call('GET', KEYS[2]))
  if last and last + gap > now then return {'full', fmt(now), fmt(last + gap), 'recipient_gap'} end
end

local caps = {}
for cap in string.gmatch(ARGV[caps_base + 1], '[^,]+') do caps[#caps + 1] = tonumber(cap) end
local hour_caps, day_caps, loads = {}, {}, {}
local function ratio(count, cap) if cap > 0 then return count / cap end return 1 end
for i = 1, n do
  hour_caps[i] = caps[2 * i - 1]
  day_caps[i] = caps[2 * i]
  loads[i] = math.max(ratio(counts[2 * i - 1], hour_caps[i]), ratio(counts[2 * i], day_caps[i]))
end

local strict = math.min(tonumber(ARGV[3]), n)
local order = {}
for i = 1, n do order[i] = i end
local tail = {}
for i = strict + 1, n do tail[#tail + 1] = i end
table.sort(tail, function(a, b)
  if loads[a] ~= loads[b] then return loads[a] < loads[b] end
  return a < b
end)
for k = 1, #tail do order[strict + k] = tail[k] end

local hour_end, day_end = window_end(3600), window_end(86400)
local interval = tonumber(ARGV[5])
local ttl = tonumber(ARGV[6])

local function free_at(i)
  local caps_at = now
  if counts[2 * i] >= day_caps[i] then
    caps_at = day_end
  elseif counts[2 * i - 1] >= hour_caps[i] then
    caps_at = hour_end
  end
  local paced_at = now
  if interval > 0 then
    local last = tonumber(redis.call('GET', KEYS[3 * i + 2]))
    if last then paced_at = last + interval end
  end
  if paced_at > caps_at then return paced_at, 'pacing' end
  return caps_at, 'caps'
end

local function commit(i)
  local hour_key, day_key = names[2 * i - 1], names[2 * i]
  local hour_count = redis.call('INCR', hour_key)
  redis.call('EXPIRE', hour_key, math.ceil(hour_end + 3600 - now))
  local day_count = redis.call('INCR', day_key)
  redis.call('EXPIRE', day_key, math.ceil(day_end + 86400 - now))
  if gap > 0 then redis.call('SET', KEYS[2], fmt(now), 'EX', ttl) end
  if interval > 0 then redis.call('SET', KEYS[3 * i + 2], fmt(now), 'EX', ttl) end
  return {'ok', fmt(now), i, hw, dw, hour_count, day_count}
end

local best_at, best_reason = nil, nil
for k = 1, n do
  local i = order[k]
  local at, reason = free_at(i)
  if at <= now then return commit(i) end
  if best_at == nil or at < best_at then best_at, best_reason = at, reason end
end
return {'full', fmt(now), fmt(best_at), best_reason}
