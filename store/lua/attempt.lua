-- attempt.lua: count one attempt against several fixed-window limits at
-- once, or against none. KEYS are the counters; for KEYS[i], ARGV[2i-1] is
-- its limit and ARGV[2i] its window in ms. A counter's window starts with
-- its first attempt.
-- Returns {1, 0} when the attempt was counted, or {0, ms} when a counter is
-- at its limit, ms being the longest time left in the windows of the
-- counters at their limit (all of them must end before a retry can pass).
local wait = -1
for i, key in ipairs(KEYS) do
  local n = tonumber(redis.call('GET', key) or '0')
  if n >= tonumber(ARGV[2 * i - 1]) then
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then -- a counter without expiry would lock out for ever
      redis.call('PEXPIRE', key, ARGV[2 * i])
      ttl = tonumber(ARGV[2 * i])
    end
    if ttl > wait then
      wait = ttl
    end
  end
end
if wait >= 0 then
  return {0, wait}
end
for i, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 or redis.call('PTTL', key) < 0 then
    redis.call('PEXPIRE', key, ARGV[2 * i])
  end
end
return {1, 0}
