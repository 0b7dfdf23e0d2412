-- fetch.lua: take the next message off the queues AND record it as unacknowledged, in one
-- atomic step, so a consumer killed while the reply is on its way loses nothing: the message
-- already sits in kombu's unacked hash, and kombu's own restore (visibility timeout) or a
-- warm shutdown puts it back. Stock kombu pops with BRPOP and records the message in a
-- second command; a consumer killed between the two loses it (kombu#305, celery#4354).
--
-- A popped message that is not a kombu envelope (the rules below) can never be delivered:
-- it is moved to the dead-letter list instead, in the same step, and never reaches kombu.
--
-- KEYS[1]      unacked         hash   delivery_tag -> JSON [payload, exchange, routing_key],
--                                     the layout kombu's QoS.append writes and
--                                     QoS.restore_by_tag reads
-- KEYS[2]      unacked_index   zset   delivery_tag scored by delivery time, Unix seconds
--                                     (QoS.restore_visible restores those older than the
--                                     visibility timeout)
-- KEYS[3]      dead letters    list   JSON {reason, at, queue, source, message}, newest
--                                     first (worker/keys.py DEAD_LETTERS)
-- KEYS[4]      unacked owners  hash   delivery_tag -> claimant name of the consumer process
--                                     that fetched it (worker/keys.py UNACKED_OWNERS)
-- KEYS[5..n]   queue lists, in the order to try them (priority steps, then kombu's fair
--              cycle); producers LPUSH, consumers take from the right
-- ARGV[1]      now, Unix seconds (float), the consumer's clock, as kombu's own QoS uses
-- ARGV[2]      the consumer process's claimant name (models/claimant.py)
-- ARGV[3..m]   the queue name of each of KEYS[5..n] (without priority suffix or prefix)
--
-- A kombu envelope: a JSON object; `properties` an object with a string `delivery_tag` and
-- a `delivery_info` object whose `exchange` and `routing_key` are strings; `body`,
-- `content-type`, `content-encoding` and `properties.body_encoding` absent or strings;
-- `headers` absent or an object.
--
-- Returns false when every queue is empty, else {i, payload, 1, delivery_tag} for a message
-- recorded (i is the 1-based position of its queue among KEYS[5..n]) or
-- {i, payload, 0, reason} for one moved to the dead-letter list.

local function optional_string(value)
  return value == nil or type(value) == 'string'
end

local function problem(payload)
  local ok, message = pcall(cjson.decode, payload)
  if not ok then
    return 'not JSON'
  end
  if type(message) ~= 'table' then
    return 'not a JSON object'
  end
  local properties = message['properties']
  if type(properties) ~= 'table' then
    return 'no properties object'
  end
  if type(properties['delivery_tag']) ~= 'string' then
    return 'no delivery_tag string in properties'
  end
  local info = properties['delivery_info']
  if type(info) ~= 'table' then
    return 'no delivery_info object in properties'
  end
  if type(info['exchange']) ~= 'string' or type(info['routing_key']) ~= 'string' then
    return 'delivery_info lacks an exchange or routing_key string'
  end
  if not (optional_string(message['body']) and optional_string(message['content-type'])
      and optional_string(message['content-encoding'])
      and optional_string(properties['body_encoding'])) then
    return 'body, content-type, content-encoding or body_encoding is not a string'
  end
  local headers = message['headers']
  if headers ~= nil and type(headers) ~= 'table' then
    return 'headers is not an object'
  end
  return nil, message, properties['delivery_tag'], info
end

for i = 5, #KEYS do
  local payload = redis.call('RPOP', KEYS[i])
  if payload then
    local reason, _, tag, info = problem(payload)
    if reason then
      local entry = cjson.encode({
        reason = 'invalid broker envelope: ' .. reason,
        at = tonumber(ARGV[1]),
        queue = ARGV[i - 2],
        source = 'fetch',
        message = payload,
      })
      redis.call('LPUSH', KEYS[3], entry)
      return {i - 4, payload, 0, reason}
    end
    local record = '[' .. payload .. ',' .. cjson.encode(info['exchange']) .. ','
      .. cjson.encode(info['routing_key']) .. ']'
    redis.call('HSET', KEYS[1], tag, record)
    redis.call('ZADD', KEYS[2], ARGV[1], tag)
    redis.call('HSET', KEYS[4], tag, ARGV[2])
    return {i - 4, payload, 1, tag}
  end
end
return false
