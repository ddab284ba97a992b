-- bans.lua: the bans (or mutes) of a room that are in force. A timed ban
-- ends by itself (its key expires); its entry in the list is dropped here.
-- KEYS[1] the room's stream (routing only). ARGV[1] room key prefix,
-- ARGV[2] 'ban' or 'mute'. Returns a flat list: user, until (ms, 0 = no end), …
local p, kind = ARGV[1], ARGV[2]
local list = p .. kind .. 's'
local xs = redis.call('ZRANGE', list, 0, -1, 'WITHSCORES')
local out = {}
for i = 1, #xs, 2 do
  local u = xs[i]
  local v = redis.call('GET', p .. kind .. ':' .. u)
  if v then
    out[#out + 1] = u
    out[#out + 1] = v
  else
    redis.call('ZREM', list, u)
  end
end
return out
