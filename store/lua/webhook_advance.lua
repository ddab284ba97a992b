-- webhook_advance.lua: record how far a room's webhook delivery got.
--
-- KEYS[1] the room's lease, KEYS[2] its cursor, KEYS[3] its pending set,
-- KEYS[4] its meta hash, KEYS[5] its stream. ARGV[1] room, ARGV[2] owner,
-- ARGV[3] the last entry handled, ARGV[4] that entry's counter q,
-- ARGV[5] lease (ms), ARGV[6] '1' to finish.
--
-- Returns 'lost' (the lease is not the caller's: nothing is written),
-- 'done' (finishing, and the cursor is at the room's newest entry: the
-- room leaves the pending set and the lease is released) or 'more'.
--
-- Only this check, atomic with every append (which marks the room in the
-- same step as it stores an entry), may take a room off the pending set:
-- an entry stored after it finds the room gone and marks it again.

local function numcmp(a, b)
  if #a ~= #b then
    return #a < #b and -1 or 1
  end
  if a == b then
    return 0
  end
  return a < b and -1 or 1
end

local function cmp(x, y)
  local xm, xs = string.match(x, '^(%d+)-(%d+)$')
  local ym, ys = string.match(y, '^(%d+)-(%d+)$')
  local c = numcmp(xm, ym)
  if c ~= 0 then
    return c
  end
  return numcmp(xs, ys)
end

-- after is the first ID after id (inclusive bound for XRANGE).
local function after(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  if seq == '18446744073709551615' then
    return string.format('%d', tonumber(ms) + 1) .. '-0'
  end
  -- seq beyond 2^53 cannot be incremented exactly in Lua; stream
  -- sequence numbers never get there.
  return ms .. '-' .. string.format('%d', tonumber(seq) + 1)
end

local room, owner, id = ARGV[1], ARGV[2], ARGV[3]
if redis.call('GET', KEYS[1]) ~= owner then
  return 'lost'
end
local cur = redis.call('GET', KEYS[2])
local curId = cur and string.match(cur, '^(%d+-%d+) ')
if not curId or cmp(id, curId) > 0 then
  redis.call('SET', KEYS[2], id .. ' ' .. ARGV[4])
  curId = id
end
if ARGV[6] == '1' then
  local le = redis.call('HGET', KEYS[4], 'le') or redis.call('HGET', KEYS[4], 'last')
  if not le or cmp(curId, le) >= 0 then
    redis.call('ZREM', KEYS[3], room)
    redis.call('DEL', KEYS[1])
    return 'done'
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
-- The pending score follows the oldest entry not yet handled, so that
-- the pending set tells how long delivery lags.
local nx = redis.call('XRANGE', KEYS[5], after(curId), '+', 'COUNT', 1)
if #nx > 0 then
  redis.call('ZADD', KEYS[3], 'XX', string.match(nx[1][1], '^(%d+)'), room)
end
return 'more'
