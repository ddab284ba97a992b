-- webhook_take.lua: take a room's webhook delivery lease.
--
-- KEYS[1] the room's lease, KEYS[2] its cursor, KEYS[3] the pending set
-- that lists it (on a cluster the one of its slot), KEYS[4] its meta hash,
-- KEYS[5] its stream.
-- ARGV[1] room, ARGV[2] owner, ARGV[3] lease (ms).
--
-- Returns {'ok', cursor id, cursor q} when the lease is the caller's now;
-- {'held', ms} while another owner holds it, for that long; {'idle',
-- newest entry id or ''} when the room has nothing pending.
--
-- The cursor is the last entry handled ("<id> <q>", q its entry counter).
-- A room has no cursor before its first delivery, and a cursor older than
-- the room's pending mark sits before entries stored while webhooks were
-- off; either way delivery starts at the first entry marked, whose ID is
-- not older than the mark's time (the pending set's score, Redis time,
-- which the stream's IDs never fall behind). A cursor with nothing stored
-- between it and that time is kept, with its counter.

local function numcmp(a, b)
  if #a ~= #b then
    return #a < #b and -1 or 1
  end
  if a == b then
    return 0
  end
  return a < b and -1 or 1
end

-- cmp compares two stream IDs given as "ms-seq".
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
  return ms .. '-' .. string.format('%d', tonumber(seq) + 1)
end

local score = redis.call('ZSCORE', KEYS[3], ARGV[1])
if not score then
  local le = redis.call('HGET', KEYS[4], 'le') or redis.call('HGET', KEYS[4], 'last') or ''
  return { 'idle', le }
end
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[2] then
  return { 'held', tostring(redis.call('PTTL', KEYS[1])) }
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
local from = string.format('%d', tonumber(score) - 1) .. '-18446744073709551615'
local cur = redis.call('GET', KEYS[2])
if cur then
  local id, q = string.match(cur, '^(%d+-%d+) (%d+)$')
  if id and (cmp(id, from) >= 0 or #redis.call('XRANGE', KEYS[5], after(id), from, 'COUNT', 1) == 0) then
    return { 'ok', id, q }
  end
end
return { 'ok', from, '0' }
