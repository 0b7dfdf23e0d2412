-- newer.lua: keep the latest `date_time` of an instance's connection webhooks; say whether
-- this one is not older than it (one round trip, atomic across API processes and threads).
--
-- KEYS[1]   zd:webhooks:connection_seen:<instance>   the latest date_time seen (a string)
-- ARGV[1]   this webhook's date_time, as Evolution wrote it ("2026-11-23T10:00:00.000Z":
--           the server's local time with a Z, one fixed format, so strings of one server
--           compare in time order)
-- ARGV[2]   how long to keep the key, seconds
-- Returns   1 when ARGV[1] >= the stored value (stored now), 0 when older (left alone).

local seen = redis.call('GET', KEYS[1])
if seen and ARGV[1] < seen then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]))
return 1
