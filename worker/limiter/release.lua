-- release.lua: give back one reserved slot (its send failed), in one round trip.
--
-- KEYS[1]   {zd}:sent:hour:<instance>:<hour_window>   the hourly counter the reservation
--           incremented (window id taken from the reservation, not from the clock)
-- KEYS[2]   {zd}:sent:day:<instance>:<day_window>     the daily counter it incremented
-- ARGV      none
-- Returns   number of counters decremented (0..2).
--
-- Each counter is decremented only if it still exists and is above 0: a counter that has
-- expired is not recreated, and a window that has rolled over since is a different key, so
-- the new window is never touched. DECR keeps the key's TTL. Last-send stamps (spacing) are
-- left alone: the attempt happened.

local released = 0
for i = 1, #KEYS do
  local count = tonumber(redis.call('GET', KEYS[i]))
  if count and count > 0 then
    redis.call('DECR', KEYS[i])
    released = released + 1
  end
end
return released
