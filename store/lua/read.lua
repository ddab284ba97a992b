-- read.lua: move a user's read position in a room forward.
-- KEYS[1] the room's stream. ARGV[1] room key prefix, ARGV[2] user,
-- ARGV[3] id, ARGV[4] publish command ('' publishes nothing: only a
-- direct room tells the other member).
-- The position moves to the newest message at or before id (events are
-- skipped), never backwards. Returns {position id or '', moved 0|1}.
local p, user, upto, pubcmd = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local cur = redis.call('HGET', p .. 'rd', user)
local curID, curN = '', -1
if cur then
  curID, curN = string.match(cur, '^(%S+) (%d+)$')
  curN = tonumber(curN)
end
local id, n = nil, nil
local from = upto
for _ = 1, 10 do
  local xs = redis.call('XREVRANGE', KEYS[1], from, '-', 'COUNT', 50)
  for _, x in ipairs(xs) do
    local f = {}
    for k = 1, #x[2], 2 do
      f[x[2][k]] = x[2][k + 1]
    end
    if f.k == nil or f.k == 'm' then
      id, n = x[1], tonumber(f.n)
      break
    end
  end
  if id ~= nil or #xs < 50 then
    break
  end
  from = '(' .. xs[#xs][1]
end
if id == nil or n == nil or n <= curN then
  return { curID, 0 }
end
redis.call('HSET', p .. 'rd', user, id .. ' ' .. n)
if pubcmd ~= '' then
  redis.call(pubcmd, p .. 'c', table.concat({ 'R', '', '', user, id }, '\31'))
end
return { id, 1 }
