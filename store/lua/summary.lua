-- summary.lua: one room as GET /api/rooms lists it for one user, without
-- scanning anything: every message carries the room's message counter n,
-- the meta hash holds the newest n, a read position holds the n of the
-- message read, and the user's mentions are a sorted set scored by n.
-- Messages after a read position are never the user's own (sending moves
-- the position), so unread is the difference, capped by what retention
-- kept.
-- KEYS[1] the room's stream. ARGV[1] room key prefix, ARGV[2] user.
-- Returns {kind, last, topic, unread, mentions, role, banned 0|1}; kind
-- is '' for a room that does not exist.
local p, user = ARGV[1], ARGV[2]
local m = redis.call('HMGET', p .. 'm', 'kind', 'last', 'n', 'topic')
if not m[1] then
  return { '', '', '', 0, 0, '', 0 }
end
local n = tonumber(m[3] or '0')
local readN = 0
local rd = redis.call('HGET', p .. 'rd', user)
if rd then
  readN = tonumber(string.match(rd, ' (%d+)$'))
elseif m[1] ~= 'direct' then
  readN = n -- a channel's position starts at the user's first join
end
local unread = math.max(0, math.min(n - readN, redis.call('XLEN', KEYS[1])))
local mentions = 0
if unread > 0 then
  mentions = redis.call('ZCOUNT', p .. 'mn:' .. user, '(' .. readN, '+inf')
end
local role = redis.call('HGET', p .. 'mem', user) or ''
local banned = redis.call('EXISTS', p .. 'ban:' .. user)
return { m[1], m[2] or '', m[4] or '', unread, mentions, role, banned }
