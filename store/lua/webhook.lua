-- webhook.lua: a room's webhook delivery lease and cursor, and the
-- cluster's hint set. ARGV[1] is the operation; the keys and the other
-- arguments are the operation's:
--
--   take     KEYS lease, cursor, pending set, meta, stream
--            ARGV room, owner, lease ms
--            -> {'ok', cursor id, cursor q} | {'held', ms} | {'idle', newest id or ''}
--   advance  KEYS lease, cursor, pending set, meta, stream
--            ARGV room, owner, id, q, lease ms, finish ('1' | '0')
--            -> 'lost' | 'done' | 'more'
--   renew    KEYS lease; ARGV owner, lease ms          -> 1 | 0
--   release  KEYS lease; ARGV owner                    -> 1 | 0
--   unhint   KEYS hint set; ARGV room, newest entry ms -> removed (1 | 0)
--
-- The pending set is the room's own slot's on a cluster (the lease, the
-- cursor, the meta hash and the stream carry the room's hash tag).
--
-- take: the lease is the caller's when it returns 'ok'; 'held' says how
-- long another owner still holds it; 'idle' that the room has nothing
-- pending. The cursor is the last entry handled ("<id> <q>", q its entry
-- counter). A room has no cursor before its first delivery, and a cursor
-- older than the room's pending mark sits before entries stored while
-- webhooks were off; either way delivery starts at the first entry
-- marked, whose ID is not older than the mark's time (the pending set's
-- score, Redis time, which the stream's IDs never fall behind). A cursor
-- with nothing stored between it and that time is kept, with its counter.
--
-- advance: 'lost' when the lease is not the caller's (nothing written);
-- else the cursor moves to id (never back) and the lease is extended.
-- Finishing with the cursor at the room's newest entry takes the room
-- off the pending set and releases the lease ('done'). Only this check,
-- atomic with every append (which marks the room in the same step as it
-- stores an entry), takes a room off the pending set: an entry stored
-- after it finds the room gone and marks it again.
--
-- unhint: drops a room from the cluster's hint set if its hint is not
-- newer than the room's newest entry when it was found with nothing
-- pending ('' when it has none). Every hint's score is the ms of an entry
-- of the room (or less), so a hint added for an entry stored since has a
-- higher score and stays; only an entry of that same millisecond can
-- lose its hint, and the slow sweep of the slot sets finds it again.

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

-- after is the first ID after id (an inclusive bound for XRANGE).
local function after(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  if seq == '18446744073709551615' then
    return string.format('%d', tonumber(ms) + 1) .. '-0'
  end
  -- seq beyond 2^53 cannot be incremented exactly in Lua; stream
  -- sequence numbers never get there.
  return ms .. '-' .. string.format('%d', tonumber(seq) + 1)
end

local function newest(meta)
  return redis.call('HGET', meta, 'le') or redis.call('HGET', meta, 'last')
end

local op = ARGV[1]

if op == 'take' then
  local room, owner, ttl = ARGV[2], ARGV[3], ARGV[4]
  local score = redis.call('ZSCORE', KEYS[3], room)
  if not score then
    return { 'idle', newest(KEYS[4]) or '' }
  end
  local holder = redis.call('GET', KEYS[1])
  if holder and holder ~= owner then
    return { 'held', tostring(redis.call('PTTL', KEYS[1])) }
  end
  redis.call('SET', KEYS[1], owner, 'PX', ttl)
  local from = string.format('%d', tonumber(score) - 1) .. '-18446744073709551615'
  local cur = redis.call('GET', KEYS[2])
  if cur then
    local id, q = string.match(cur, '^(%d+-%d+) (%d+)$')
    if id and (cmp(id, from) >= 0 or #redis.call('XRANGE', KEYS[5], after(id), from, 'COUNT', 1) == 0) then
      return { 'ok', id, q }
    end
  end
  return { 'ok', from, '0' }
end

if op == 'advance' then
  local room, owner, id, q, ttl, finish = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
  if redis.call('GET', KEYS[1]) ~= owner then
    return 'lost'
  end
  local cur = redis.call('GET', KEYS[2])
  local curId = cur and string.match(cur, '^(%d+-%d+) ')
  if not curId or cmp(id, curId) > 0 then
    redis.call('SET', KEYS[2], id .. ' ' .. q)
    curId = id
  end
  if finish == '1' then
    local le = newest(KEYS[4])
    if not le or cmp(curId, le) >= 0 then
      redis.call('ZREM', KEYS[3], room)
      redis.call('DEL', KEYS[1])
      return 'done'
    end
  end
  redis.call('PEXPIRE', KEYS[1], ttl)
  -- The pending score follows the oldest entry not yet handled, so that
  -- the pending set tells how long delivery lags.
  local nx = redis.call('XRANGE', KEYS[5], after(curId), '+', 'COUNT', 1)
  if #nx > 0 then
    redis.call('ZADD', KEYS[3], 'XX', string.match(nx[1][1], '^(%d+)'), room)
  end
  return 'more'
end

if op == 'renew' or op == 'release' then
  if redis.call('GET', KEYS[1]) ~= ARGV[2] then
    return 0
  end
  if op == 'renew' then
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
  else
    redis.call('DEL', KEYS[1])
  end
  return 1
end

if op == 'unhint' then
  local score = redis.call('ZSCORE', KEYS[1], ARGV[2])
  if not score then
    return 0
  end
  if ARGV[3] ~= '' and tonumber(score) > tonumber(ARGV[3]) then
    return 0
  end
  return redis.call('ZREM', KEYS[1], ARGV[2])
end

return redis.error_reply('webhook.lua: unknown operation ' .. tostring(op))
