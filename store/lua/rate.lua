-- rate.lua: take one token from each of a batch of send-rate buckets.
-- KEYS: one bucket per send (the same key again for the same user).
-- ARGV[1] rate per second, ARGV[2] burst.
-- Returns per key 0 (allowed) or the milliseconds until a retry can pass.
-- In cluster mode the buckets (one hash tag per user) are checked with
-- this script before the sends are stored; in single mode append.lua
-- does it in the same call.
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local nowms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local buckets, order, out = {}, {}, {}
for i, key in ipairs(KEYS) do
  local b = buckets[key]
  if b == nil then
    local v = redis.call('HMGET', key, 't', 'ts')
    b = { t = tonumber(v[1]), ts = tonumber(v[2]), dirty = false }
    if b.t == nil or b.ts == nil then
      b.t, b.ts = burst, nowms
    end
    buckets[key] = b
    order[#order + 1] = key
  end
  local now = math.max(nowms, b.ts)
  local tokens = math.min(burst, b.t + (now - b.ts) * rate / 1000)
  if tokens < 1 then
    out[i] = math.ceil((1 - tokens) * 1000 / rate)
  else
    b.t, b.ts, b.dirty = tokens - 1, now, true
    out[i] = 0
  end
end
for _, key in ipairs(order) do
  local b = buckets[key]
  if b.dirty then
    redis.call('HSET', key, 't', tostring(b.t), 'ts', tostring(b.ts))
    redis.call('PEXPIRE', key, math.ceil(burst * 1000 / rate) + 1000)
  end
end
return out
