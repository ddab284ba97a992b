-- history.lua: messages of a room in their current state, in one call:
-- the stream holds messages and events (edits, deletions, reactions,
-- member changes) in one order; a page counts messages only, so the
-- script reads past events until it has enough messages, and adds each
-- message's state (edit, deletion, reply count, reactions).
-- KEYS[1] the room's stream. ARGV[1] room key prefix, ARGV[2] mode:
--   rev    newest first, before ARGV[3] ('' = from the newest)
--   fwd    oldest first, after ARGV[3]
--   one    the message ARGV[3] only
--   thread the replies to ARGV[3] after ARGV[6] ('' = from the first), oldest first
-- ARGV[4] messages wanted, ARGV[5] entries the scan may read (the budget).
-- Returns {messages, cont}: messages in scan order, each
-- {id, user, text, n, client_id, reply_to, mentions, edit, deleted_ms,
-- reply_count, reactions}; edit is '' or "<ms>\n<mentions>\n<text>",
-- reactions a flat list emoji, users…; cont is '' when the scan is done
-- (enough messages, or the end of the stream), else the id to go on
-- from when the budget ran out first.
local p, mode, cursor = ARGV[1], ARGV[2], ARGV[3]
local want, budget = tonumber(ARGV[4]), tonumber(ARGV[5])
local stream, st = KEYS[1], p .. 'st'
-- Nothing lies after the largest stream id, and Redis refuses an
-- exclusive range from it.
local MAXID = '18446744073709551615-18446744073709551615'

local function message(id, kv)
  local f = {}
  for k = 1, #kv, 2 do
    f[kv[k]] = kv[k + 1]
  end
  if f.k ~= nil and f.k ~= 'm' then
    return nil
  end
  local s = redis.call('HMGET', st, 'e:' .. id, 'd:' .. id, 'c:' .. id)
  local rx = {}
  if not s[2] then
    rx = redis.call('HGETALL', p .. 'rx:' .. id)
  end
  return { id, f.u or '', f.t or '', f.n or '0', f.c or '', f.r or '', f.m or '',
           s[1] or '', s[2] or '', s[3] or '', rx }
end

if mode == 'one' then
  local xs = redis.call('XRANGE', stream, cursor, cursor)
  local out = {}
  if #xs == 1 then
    local m = message(xs[1][1], xs[1][2])
    if m then out[1] = m end
  end
  return { out, '' }
end

if mode == 'thread' then
  local root = redis.call('XRANGE', stream, cursor, cursor)
  if #root == 0 then
    return { {}, '' }
  end
  local rm = message(root[1][1], root[1][2])
  if rm == nil then
    return { {}, '' }
  end
  local from = '-'
  if ARGV[6] ~= '' then
    from = '(' .. ARGV[6]
  end
  local ids = {}
  if ARGV[6] ~= MAXID then
    ids = redis.call('XRANGE', p .. 'th:' .. cursor, from, '+', 'COUNT', want)
  end
  local out = { rm }
  for _, x in ipairs(ids) do
    local e = redis.call('XRANGE', stream, x[1], x[1])
    if #e == 1 then
      local m = message(e[1][1], e[1][2])
      if m then out[#out + 1] = m end
    end
  end
  return { out, '' }
end

if mode == 'fwd' and cursor == MAXID then
  return { {}, '' }
end

local out, scanned = {}, 0
local chunk = math.min(math.max(want * 2, 16), 512)
local from
if mode == 'rev' then
  from = '+'
  if cursor ~= '' then from = '(' .. cursor end
else
  from = '-'
  if cursor ~= '' then from = '(' .. cursor end
end
while true do
  local xs
  if mode == 'rev' then
    xs = redis.call('XREVRANGE', stream, from, '-', 'COUNT', chunk)
  else
    xs = redis.call('XRANGE', stream, from, '+', 'COUNT', chunk)
  end
  for _, x in ipairs(xs) do
    scanned = scanned + 1
    local m = message(x[1], x[2])
    if m then
      out[#out + 1] = m
      if #out >= want then
        return { out, '' }
      end
    end
  end
  if #xs < chunk then
    return { out, '' }
  end
  from = '(' .. xs[#xs][1]
  if scanned >= budget then
    return { out, xs[#xs][1] }
  end
end
