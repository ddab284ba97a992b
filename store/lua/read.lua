-- read.lua: move a user's read position in a room forward.
-- KEYS[1] room stream, KEYS[2] room read positions hash (user -> "id n").
-- ARGV[1] user, ARGV[2] id, ARGV[3] event channel ('' = publish nothing), ARGV[4] room.
-- The position moves to the newest message at or before id, never backwards.
-- Returns {position id or '', moved 0|1}.
local e = redis.call('XREVRANGE', KEYS[1], ARGV[2], '-', 'COUNT', 1)
local cur = redis.call('HGET', KEYS[2], ARGV[1])
local curID, curN = '', -1
if cur then
  curID, curN = string.match(cur, '^(%S+) (%d+)$')
  curN = tonumber(curN)
end
if #e == 0 then
  return {curID, 0}
end
local id, fields, n = e[1][1], e[1][2], nil
for i = 1, #fields, 2 do
  if fields[i] == 'n' then
    n = tonumber(fields[i + 1])
  end
end
if n == nil or n <= curN then
  return {curID, 0}
end
redis.call('HSET', KEYS[2], ARGV[1], id .. ' ' .. n)
if ARGV[3] ~= '' then
  redis.call('PUBLISH', ARGV[3], '{"k":"read","r":"' .. ARGV[4] .. '","u":"' .. ARGV[1] .. '","i":"' .. id .. '"}')
end
return {id, 1}
