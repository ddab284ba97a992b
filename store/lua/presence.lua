-- presence.lua: who is online in one room, across instances.
-- KEYS[1] the room's stream (routing only). ARGV[1] room key prefix,
-- ARGV[2] op ('join' | 'leave' | 'reap' | 'online'), ARGV[3] instance,
-- ARGV[4] publish command, ARGV[5..] users (join, leave).
-- The room's hash 'p' holds "user|instance" for each instance that has a
-- session of user joined to the room; 'pc' counts them per user. A user
-- is online while the count is above zero. 'join' and 'leave' change one
-- instance's entries and announce users who came or went; 'reap' drops
-- every entry of an instance that died (its heartbeat in the instance
-- registry expired) and announces who went. Returns the users online.
local p, op, inst, pubcmd = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local ph, pc = p .. 'p', p .. 'pc'
local SEP = '\31'
local function announce(user, state)
  if pubcmd ~= '' then
    redis.call(pubcmd, p .. 'c', table.concat({ 'P', '', '', user, state }, SEP))
  end
end
local function drop(field)
  if redis.call('HDEL', ph, field) == 1 then
    local user = string.match(field, '^(.*)|')
    if redis.call('HINCRBY', pc, user, -1) <= 0 then
      redis.call('HDEL', pc, user)
      announce(user, 'offline')
    end
  end
end
if op == 'join' then
  for i = 5, #ARGV do
    local user = ARGV[i]
    if redis.call('HSETNX', ph, user .. '|' .. inst, 1) == 1 then
      if redis.call('HINCRBY', pc, user, 1) == 1 then
        announce(user, 'online')
      end
    end
  end
elseif op == 'leave' then
  for i = 5, #ARGV do
    drop(ARGV[i] .. '|' .. inst)
  end
  return {}
elseif op == 'reap' then
  local suffix = '|' .. inst
  for _, field in ipairs(redis.call('HKEYS', ph)) do
    if string.sub(field, -#suffix) == suffix then
      drop(field)
    end
  end
  return {}
end
return redis.call('HKEYS', pc)
