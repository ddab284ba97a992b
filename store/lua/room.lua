-- room.lua: create a room, or change its membership, roles, bans, mutes
-- or topic, each atomically.
--
-- KEYS[1] the room's stream (routing only). ARGV[1] room key prefix
-- ("chat:{<room>}:"), ARGV[2] operation, ARGV[3] publish command ('' to
-- return the notice), ARGV[4] webhook pending key ('' none), then:
--   create  kind topic owner nmembers members...   -> 'ok' | 'exists' kind
--   add     user by                                -> 'ok' | 'member' role | 'banned'
--   remove  user by reason                         -> 'ok' | 'notmember' | 'lastowner'
--   role    user role                              -> 'ok' | 'notmember' | 'lastowner'
--   ban     user until_ms by  (0: no end)          -> 'ok'
--   unban   user                                   -> 'ok' | 'notbanned'
--   mute    user until_ms                          -> 'ok'
--   unmute  user                                   -> 'ok' | 'notbanned'
--   topic   topic by                               -> 'ok'
-- Every answer is {status, detail, id, q, notice, kind}. Membership changes are
-- appended to the stream as member entries (k=M), in order with the
-- room's messages: an instance that reads a removal stops delivering the
-- room to that user's sockets before it delivers anything stored later.
local p, op, pubcmd, whkey = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local meta, mem, mz = p .. 'm', p .. 'mem', p .. 'mz'
local SEP = '\31'
local t = redis.call('TIME')
local nowms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local roomName = string.sub(p, 7, -3)
local kindNow = redis.call('HGET', meta, 'kind') or ''

local function publish(notice)
  if pubcmd ~= '' then
    redis.call(pubcmd, p .. 'c', notice)
    return ''
  end
  return notice
end

-- member appends a member entry: change of who, made by by.
local function member(who, change, by)
  local q = redis.call('HINCRBY', meta, 'q', 1)
  local qs = string.format('%d', q)
  local id = redis.call('XADD', p .. 's', '*', 'k', 'M', 'u', by, 'w', who, 'g', change, 'q', qs)
  redis.call('HSET', meta, 'le', id)
  if whkey ~= '' then
    redis.call('ZADD', whkey, 'NX', nowms, roomName)
  end
  return id, qs, publish(table.concat({ 'M', id, qs, by, who, change }, SEP))
end

local function setRole(user, role)
  local old = redis.call('HGET', mem, user)
  if old == 'owner' and role ~= 'owner' then
    redis.call('HINCRBY', meta, 'no', -1)
  elseif old ~= 'owner' and role == 'owner' then
    redis.call('HINCRBY', meta, 'no', 1)
  end
  if role then
    redis.call('HSET', mem, user, role)
    redis.call('ZADD', mz, 0, user)
  else
    redis.call('HDEL', mem, user)
    redis.call('ZREM', mz, user)
  end
end

if op == 'create' then
  if kindNow ~= '' then
    return { 'exists', kindNow, '', '', '', kindNow }
  end
  local topic, owner, n = ARGV[6], ARGV[7], tonumber(ARGV[8])
  redis.call('HSET', meta, 'kind', ARGV[5], 'q', 0, 'n', 0, 'no', 0, 'created', nowms)
  if topic ~= '' then
    redis.call('HSET', meta, 'topic', topic)
  end
  local id, qs, notice = '', '', ''
  if owner ~= '' then
    setRole(owner, 'owner')
    id, qs, notice = member(owner, 'added', owner)
  end
  for i = 1, n do
    local u = ARGV[8 + i]
    if u ~= owner then
      setRole(u, 'member')
      id, qs, notice = member(u, 'added', owner)
    end
  end
  return { 'ok', '', id, qs, notice, ARGV[5] }
end

if kindNow == '' then
  return { 'notfound', '', '', '', '', kindNow }
end

if op == 'add' then
  local user, by = ARGV[5], ARGV[6]
  if redis.call('EXISTS', p .. 'ban:' .. user) == 1 then
    return { 'banned', '', '', '', '', kindNow }
  end
  local role = redis.call('HGET', mem, user)
  if role then
    return { 'member', role, '', '', '', kindNow }
  end
  setRole(user, 'member')
  local id, qs, notice = member(user, 'added', by)
  return { 'ok', 'member', id, qs, notice, kindNow }
elseif op == 'remove' then
  local user, by, reason = ARGV[5], ARGV[6], ARGV[7]
  local role = redis.call('HGET', mem, user)
  if not role then
    return { 'notmember', '', '', '', '', kindNow }
  end
  if role == 'owner' and tonumber(redis.call('HGET', meta, 'no') or '0') <= 1 then
    return { 'lastowner', '', '', '', '', kindNow }
  end
  setRole(user, nil)
  local id, qs, notice = member(user, reason, by)
  return { 'ok', role, id, qs, notice, kindNow }
elseif op == 'role' then
  local user, role = ARGV[5], ARGV[6]
  local old = redis.call('HGET', mem, user)
  if not old then
    return { 'notmember', '', '', '', '', kindNow }
  end
  if old == 'owner' and role ~= 'owner' and tonumber(redis.call('HGET', meta, 'no') or '0') <= 1 then
    return { 'lastowner', '', '', '', '', kindNow }
  end
  setRole(user, role)
  return { 'ok', old, '', '', '', kindNow }
elseif op == 'ban' or op == 'mute' then
  local user, untilMs = ARGV[5], tonumber(ARGV[6])
  local key, list = p .. op .. ':' .. user, p .. op .. 's'
  if untilMs > 0 then
    redis.call('SET', key, untilMs, 'PXAT', untilMs)
    redis.call('ZADD', list, untilMs, user)
  else
    redis.call('SET', key, 0)
    redis.call('ZADD', list, '+inf', user)
  end
  if op == 'ban' then
    local role = redis.call('HGET', mem, user)
    if role == 'owner' then
      redis.call('HINCRBY', meta, 'no', -1)
    end
    redis.call('HDEL', mem, user)
    redis.call('ZREM', mz, user)
    local id, qs, notice = member(user, 'banned', ARGV[7])
    return { 'ok', role or '', id, qs, notice, kindNow }
  end
  return { 'ok', '', '', '', '', kindNow }
elseif op == 'unban' or op == 'unmute' then
  local kind = string.sub(op, 3)
  local user = ARGV[5]
  local gone = redis.call('DEL', p .. kind .. ':' .. user)
  local listed = redis.call('ZREM', p .. kind .. 's', user)
  if gone == 0 then
    return { 'notbanned', '', '', '', '', kindNow }
  end
  return { 'ok', '', '', '', '', kindNow }
elseif op == 'topic' then
  local topic, by = ARGV[5], ARGV[6]
  redis.call('HSET', meta, 'topic', topic)
  local notice = publish(table.concat({ 'T', '', '', by, topic }, SEP))
  return { 'ok', '', '', '', notice, kindNow }
end
return redis.error_reply('room.lua: unknown operation ' .. op)
