-- presence.lua: who is online in one room, across instances.
-- KEYS[1] zset of "user|instance" scored by expiry (ms), KEYS[2] hash user -> live entries.
-- ARGV[1] op ('join' | 'leave' | 'online'), ARGV[2] now (ms), ARGV[3] expiry (ms),
-- ARGV[4] instance, ARGV[5] event channel, ARGV[6] room, ARGV[7..] users.
-- Every call first drops expired entries (a dead instance's), publishing
-- 'offline' for users left with none. 'join' adds or refreshes entries
-- (the heartbeat is a join), publishing 'online' for users who had none.
-- Returns the users online (empty for 'leave').
local function publish(user, state)
  redis.call('PUBLISH', ARGV[5], '{"k":"presence","r":"' .. ARGV[6] .. '","u":"' .. user .. '","s":"' .. state .. '"}')
end
local function drop(member)
  if redis.call('ZREM', KEYS[1], member) == 1 then
    local user = string.match(member, '^(.*)|')
    if redis.call('HINCRBY', KEYS[2], user, -1) <= 0 then
      redis.call('HDEL', KEYS[2], user)
      publish(user, 'offline')
    end
  end
end
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])) do
  drop(member)
end
local op = ARGV[1]
for i = 7, #ARGV do
  local user = ARGV[i]
  local member = user .. '|' .. ARGV[4]
  if op == 'join' then
    if redis.call('ZADD', KEYS[1], ARGV[3], member) == 1 then
      if redis.call('HINCRBY', KEYS[2], user, 1) == 1 then
        publish(user, 'online')
      end
    end
  elseif op == 'leave' then
    drop(member)
  end
end
if op == 'leave' then
  return {}
end
return redis.call('HKEYS', KEYS[2])
