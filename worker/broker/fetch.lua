-- fetch.lua: take the next message off the queues AND record it as unacknowledged, in one
-- atomic step, so a consumer killed while the reply is on its way loses nothing: the message
-- already sits in kombu's unacked hash, and kombu's own restore (visibility timeout) or a
-- warm shutdown puts it back. Stock kombu pops with BRPOP and records the message in a
-- second command; a consumer killed between the two loses it (kombu#305, celery#4354).
--
-- KEYS[1]      unacked         hash   delivery_tag -> JSON [payload, exchange, routing_key],
--                                     the layout kombu's QoS.append writes and
--                                     QoS.restore_by_tag reads
-- KEYS[2]      unacked_index   zset   delivery_tag scored by delivery time, Unix seconds
--                                     (QoS.restore_visible restores those older than the
--                                     visibility timeout)
-- KEYS[3..n]   queue lists, in the order to try them (priority steps, then kombu's fair
--              cycle); producers LPUSH, consumers take from the right
-- ARGV[1]      now, Unix seconds (float), the consumer's clock, as kombu's own QoS uses
--
-- Returns false when every queue is empty, else {i, payload, recorded}: i is the 1-based
-- position of the queue among KEYS[3..n], payload the message as published, recorded 1
-- when it was written to unacked (0 for a payload without a delivery tag, which kombu's
-- Python side then records or rejects as it always did).

for i = 3, #KEYS do
  local payload = redis.call('RPOP', KEYS[i])
  if payload then
    local ok, message = pcall(cjson.decode, payload)
    local properties = ok and type(message) == 'table' and message['properties']
    local tag = type(properties) == 'table' and properties['delivery_tag']
    local info = type(properties) == 'table' and properties['delivery_info']
    if type(tag) == 'string' and type(info) == 'table' then
      local record = '[' .. payload .. ',' .. cjson.encode(info['exchange']) .. ','
        .. cjson.encode(info['routing_key']) .. ']'
      redis.call('HSET', KEYS[1], tag, record)
      redis.call('ZADD', KEYS[2], ARGV[1], tag)
      return {i - 2, payload, 1}
    end
    return {i - 2, payload, 0}
  end
end
return false
