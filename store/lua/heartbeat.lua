-- heartbeat.lua: keep an instance alive in the registry, by Redis time
-- (so instances' clocks need not agree), and list the instances whose
-- heartbeat expired.
-- KEYS[1] the registry (sorted set: instance -> expiry ms).
-- ARGV[1] instance, ARGV[2] TTL (ms), ARGV[3] 'beat' or 'leave'.
-- Returns the expired instances.
local t = redis.call('TIME')
local nowms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[3] == 'leave' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return {}
end
redis.call('ZADD', KEYS[1], nowms + tonumber(ARGV[2]), ARGV[1])
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', nowms)
