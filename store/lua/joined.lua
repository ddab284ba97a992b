-- joined.lua: start a user's read position in a channel at its newest
-- message, the first time the user joins it.
-- KEYS[1] the room's stream (routing only). ARGV[1] room key prefix, ARGV[2] user.
local p, user = ARGV[1], ARGV[2]
if redis.call('HEXISTS', p .. 'rd', user) == 1 then
  return 0
end
local m = redis.call('HMGET', p .. 'm', 'last', 'n')
redis.call('HSET', p .. 'rd', user, (m[1] or '0-0') .. ' ' .. (m[2] or '0'))
return 1
