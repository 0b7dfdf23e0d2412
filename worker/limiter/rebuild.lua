-- rebuild.lua: after Redis lost its data, set the current hour's and day's counters of
-- every instance to what PostgreSQL recorded (never lowering a counter that is already
-- higher), then set the sentinel, all in one atomic step. The caller holds the rebuild
-- lock, so this runs once across workers; reserve.lua grants nothing until the sentinel
-- is back.
--
-- KEYS[1]        {zd}:counters:sentinel                        set to "1" (no expiry)
-- then per instance i = 1..n (n = (#KEYS - 1) / 2):
-- KEYS[2i]       {zd}:sent:hour:<instance>:<hour_window>       integer counter
-- KEYS[2i+1]     {zd}:sent:day:<instance>:<day_window>         integer counter
--
-- ARGV[1]        TTL of the hour counters, whole seconds (the hour window's end + 3600 s)
-- ARGV[2]        TTL of the day counters, whole seconds (the day window's end + 86400 s)
-- ARGV[2i+1]     sends that spent a slot on instance i this hour (PostgreSQL's count)
-- ARGV[2i+2]     the same for this day
--
-- Returns the number of counters raised.

local raised = 0
local n = (#KEYS - 1) / 2
for i = 1, n do
  for part = 0, 1 do
    local key = KEYS[2 * i + part]
    local count = tonumber(ARGV[2 * i + 1 + part])
    local current = tonumber(redis.call('GET', key)) or 0
    if count > current then
      redis.call('SET', key, count, 'EX', tonumber(ARGV[1 + part]))
      raised = raised + 1
    end
  end
end
redis.call('SET', KEYS[1], '1')
return raised
