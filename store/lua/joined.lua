-- joined.lua: start a user's read position in a channel at its newest
-- message, the first time the user joins it.
-- KEYS[1] room meta hash, KEYS[2] room read positions hash. ARGV[1] user.
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
  return 0
end
local m = redis.call('HMGET', KEYS[1], 'last', 'n')
redis.call('HSET', KEYS[2], ARGV[1], (m[1] or '0-0') .. ' ' .. (m[2] or '0'))
return 1
