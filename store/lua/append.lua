-- append.lua: append a batch of entries (messages, edits, deletions,
-- reactions) to room streams, each atomically and in order.
--
-- Every key a request touches lives under its room's hash tag
-- ("chat:{<room>}:"), given as the request's prefix, so in Redis Cluster
-- a batch holds requests of one hash slot; KEYS holds each request's
-- stream key so the call is routed to that slot. In single mode a batch
-- may mix rooms, and a request may name its user's send-rate bucket
-- (another tag); in cluster mode the rate is checked before this call.
--
-- ARGV[1] MAXLEN (entries kept per room), ARGV[2] idempotency TTL (s),
-- ARGV[3] rate per second, ARGV[4] burst, ARGV[5] publish command
-- ('PUBLISH', 'SPUBLISH', or '' to return the notice instead), then one
-- group per request: its argument count, then the kind and its fields.
--
--   m prefix user admin text client_id idem reply_to rate_key wh_key ncand cand...
--   e prefix user admin target text window_ms wh_key rate_key ncand cand...
--   d prefix user admin target wh_key rate_key
--   r prefix user admin target emoji on wh_key rate_key
--
-- Every kind takes a token from the user's send-rate bucket (rate_key,
-- '' for none): edits, deletions and reactions count against the send
-- rate like messages, a reaction that changes nothing included, so that
-- none of them is a free way to make Redis work. A repeated client_id
-- does not (its answer is the first send's ack).
--
-- The engine decides who may do what (engine.Access.Permit) from what it
-- knows of the room; this script re-checks, in the same atomic step as
-- the write, the facts that decision used and that can change at any
-- moment: a ban, a mute, membership of a private channel, and for a
-- deletion of someone else's message the role of owner or moderator.
-- admin '1' (CHAT_ADMINS) skips them. wh_key '' records no webhook, else
-- the room is added to that pending set (same hash tag in cluster mode).
-- Returns six values per request:
--   status ('ok' | 'dup' | 'noop' | 'rl' | 'notfound' | 'forbidden' (banned, muted, not a
--   member) | 'notyours' (someone else's message) | 'late' (past the edit window) | 'invalid' |
--   'noreply'),
--   id (or retry ms for 'rl'), q, n, mentions (space-separated), notice (when not published).

local maxlen, ttl = tonumber(ARGV[1]), ARGV[2]
local rate, burst = tonumber(ARGV[3]), tonumber(ARGV[4])
local pubcmd = ARGV[5]
local SEP = '\31'

local t = redis.call('TIME')
local nowms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local rooms, roomOrder = {}, {}
local buckets, bucketOrder = {}, {}
local out = {}

local function room(prefix)
  local r = rooms[prefix]
  if r == nil then
    local m = redis.call('HMGET', prefix .. 'm', 'kind', 'v', 'q', 'n')
    r = { kind = m[1], q = tonumber(m[3] or '0'), n = tonumber(m[4] or '0'),
          dirty = false, pos = {}, users = {} }
    rooms[prefix] = r
    roomOrder[#roomOrder + 1] = prefix
  end
  return r
end

local function reply(status, id, q, n, mentions, notice)
  local k = #out
  out[k + 1] = status
  out[k + 2] = id or ''
  out[k + 3] = q or ''
  out[k + 4] = n or ''
  out[k + 5] = mentions or ''
  out[k + 6] = notice or ''
end

-- fields returns the fields of one stream entry as a table, or nil.
local function entry(prefix, id)
  local xs = redis.call('XRANGE', prefix .. 's', id, id)
  if #xs == 0 then
    return nil
  end
  local f = {}
  local kv = xs[1][2]
  for i = 1, #kv, 2 do
    f[kv[i]] = kv[i + 1]
  end
  return f
end

-- target returns the live message id of the room (not an event, not
-- deleted), or nil.
local function target(prefix, id)
  local f = entry(prefix, id)
  if f == nil or (f.k ~= nil and f.k ~= 'm') then
    return nil
  end
  if redis.call('HEXISTS', prefix .. 'st', 'd:' .. id) == 1 then
    return nil
  end
  return f
end

-- readable keeps the candidates who may read the room: not banned; in a
-- private channel, members. (Direct rooms: the engine passes only the
-- room's two users.)
local function readable(prefix, r, cands)
  local keep = {}
  for _, u in ipairs(cands) do
    local ok = redis.call('EXISTS', prefix .. 'ban:' .. u) == 0
    if ok and r.kind == 'private' then
      ok = redis.call('HEXISTS', prefix .. 'mem', u) == 1
    end
    if ok then
      keep[#keep + 1] = u
    end
  end
  return keep
end

-- mayWrite re-checks what a write needs: not banned, in a private
-- channel a member, and unless deleting, not muted.
local function mayWrite(prefix, r, user, admin, unmuted)
  if admin == '1' or r.kind == 'direct' then
    return true
  end
  if redis.call('EXISTS', prefix .. 'ban:' .. user) == 1 then
    return false
  end
  if unmuted and redis.call('EXISTS', prefix .. 'mute:' .. user) == 1 then
    return false
  end
  if r.kind == 'private' and redis.call('HEXISTS', prefix .. 'mem', user) == 0 then
    return false
  end
  return true
end

local function publish(prefix, notice)
  if pubcmd ~= '' then
    redis.call(pubcmd, prefix .. 'c', notice)
    return ''
  end
  return notice
end

local function webhook(whkey, room)
  if whkey ~= '' then
    redis.call('ZADD', whkey, 'NX', nowms, room)
  end
end

-- take takes a token from the send-rate bucket rkey ('' for none) and
-- returns nil, or the milliseconds until a retry can pass.
local function take(rkey)
  if rkey == '' then
    return nil
  end
  -- Token bucket: burst tokens, refilled at rate per second.
  local b = buckets[rkey]
  if b == nil then
    local v = redis.call('HMGET', rkey, 't', 'ts')
    b = { t = tonumber(v[1]), ts = tonumber(v[2]), dirty = false }
    if b.t == nil or b.ts == nil then
      b.t, b.ts = burst, nowms
    end
    buckets[rkey] = b
    bucketOrder[#bucketOrder + 1] = rkey
  end
  local now = math.max(nowms, b.ts)
  local tokens = math.min(burst, b.t + (now - b.ts) * rate / 1000)
  if tokens < 1 then
    return tostring(math.ceil((1 - tokens) * 1000 / rate))
  end
  b.t, b.ts, b.dirty = tokens - 1, now, true
  return nil
end

local function bump(r, prefix, id)
  r.q = r.q + 1
  r.dirty = true
  r.lastEntry = id
end

-- setMentions moves the mention index of message id (counter n) from the
-- users in old to those in new.
local function setMentions(prefix, id, n, old, new)
  local keep = {}
  for _, u in ipairs(new) do
    keep[u] = true
  end
  for _, u in ipairs(old) do
    if not keep[u] then
      redis.call('ZREM', prefix .. 'mn:' .. u, id)
    end
  end
  for _, u in ipairs(new) do
    local k = prefix .. 'mn:' .. u
    redis.call('ZADD', k, n, id)
    if redis.call('ZCARD', k) > 1000 then
      redis.call('ZREMRANGEBYRANK', k, 0, -1001)
    end
  end
end

local function split(s)
  local xs = {}
  if s == nil then
    return xs
  end
  for w in string.gmatch(s, '%S+') do
    xs[#xs + 1] = w
  end
  return xs
end

-- currentMentions returns the users message id names now (after edits).
local function currentMentions(prefix, id, f)
  local e = redis.call('HGET', prefix .. 'st', 'e:' .. id)
  if e then
    local _, m = string.match(e, '^(%d+)\n([^\n]*)\n')
    return split(m)
  end
  return split(f.m)
end

local i = 6
while i <= #ARGV do
  local nargs = tonumber(ARGV[i])
  local a = {}
  for j = 1, nargs do
    a[j] = ARGV[i + j]
  end
  i = i + nargs + 1

  local kind, prefix, user, admin = a[1], a[2], a[3], a[4]
  local r = room(prefix)

  if r.kind == false or r.kind == nil then
    reply('notfound')
  elseif not mayWrite(prefix, r, user, admin, kind ~= 'd') then
    reply('forbidden')
  elseif kind == 'm' then
    local text, cid, replyTo, rkey, whkey = a[5], a[6], a[8], a[9], a[10]
    local ncand = tonumber(a[11])
    local cands = {}
    for j = 1, ncand do
      cands[j] = a[11 + j]
    end
    -- a[7] is a digest of (user, client_id), so no two senders' keys meet.
    local idem = prefix .. 'i:' .. a[7]
    local prev = false
    if cid ~= '' then
      prev = redis.call('GET', idem)
    end
    local limited = nil
    if not prev then
      limited = take(rkey)
    end
    if prev then
      reply('dup', prev)
    elseif limited then
      reply('rl', limited)
    elseif replyTo ~= '' and target(prefix, replyTo) == nil then
      reply('noreply')
    else
      local ments = readable(prefix, r, cands)
      local mtext = table.concat(ments, ' ')
      r.n = r.n + 1
      local q = r.q + 1
      local ns, qs = string.format('%d', r.n), string.format('%d', q)
      local fv = { 'u', user, 't', text, 'n', ns, 'q', qs }
      if cid ~= '' then fv[#fv + 1] = 'c'; fv[#fv + 1] = cid end
      if replyTo ~= '' then fv[#fv + 1] = 'r'; fv[#fv + 1] = replyTo end
      if #ments > 0 then fv[#fv + 1] = 'm'; fv[#fv + 1] = mtext end
      local id = redis.call('XADD', prefix .. 's', '*', unpack(fv))
      bump(r, prefix, id)
      r.last = id
      if cid ~= '' then
        redis.call('SET', idem, id, 'EX', ttl)
      end
      if replyTo ~= '' then
        redis.call('XADD', prefix .. 'th:' .. replyTo, id, 'n', ns)
        redis.call('HINCRBY', prefix .. 'st', 'c:' .. replyTo, 1)
      end
      if #ments > 0 then
        setMentions(prefix, id, r.n, {}, ments)
      end
      -- Sending moves the sender's read position to the message sent.
      if r.pos[user] == nil then
        r.users[#r.users + 1] = user
      end
      r.pos[user] = id .. ' ' .. ns
      webhook(whkey, string.sub(prefix, 7, -3))
      local notice = publish(prefix, table.concat({ 'm', id, qs, ns, user, cid, replyTo, mtext, text }, SEP))
      reply('ok', id, qs, ns, mtext, notice)
    end
  elseif kind == 'e' then
    local tid, text, window, whkey = a[5], a[6], tonumber(a[7]), a[8]
    local ncand = tonumber(a[10])
    local cands = {}
    for j = 1, ncand do
      cands[j] = a[10 + j]
    end
    local limited = take(a[9])
    local f = target(prefix, tid)
    local tms = tonumber(string.match(tid, '^(%d+)'))
    if limited then
      reply('rl', limited)
    elseif f == nil then
      reply('notfound')
    elseif f.u ~= user then
      reply('notyours')
    elseif window > 0 and nowms - tms > window then
      reply('late')
    else
      local ments = readable(prefix, r, cands)
      local mtext = table.concat(ments, ' ')
      local q = r.q + 1
      local qs = string.format('%d', q)
      local fv = { 'k', 'e', 'u', user, 'x', tid, 't', text, 'q', qs }
      if #ments > 0 then fv[#fv + 1] = 'm'; fv[#fv + 1] = mtext end
      local id = redis.call('XADD', prefix .. 's', '*', unpack(fv))
      bump(r, prefix, id)
      setMentions(prefix, tid, tonumber(f.n or '0'), currentMentions(prefix, tid, f), ments)
      local ems = string.match(id, '^(%d+)')
      redis.call('HSET', prefix .. 'st', 'e:' .. tid, ems .. '\n' .. mtext .. '\n' .. text)
      webhook(whkey, string.sub(prefix, 7, -3))
      local notice = publish(prefix, table.concat({ 'e', id, qs, user, tid, mtext, text }, SEP))
      reply('ok', id, qs, '', mtext, notice)
    end
  elseif kind == 'd' then
    local tid, whkey = a[5], a[6]
    local limited = take(a[7])
    local f = target(prefix, tid)
    local role = nil
    if f ~= nil and f.u ~= user and admin ~= '1' then
      role = redis.call('HGET', prefix .. 'mem', user)
    end
    if limited then
      reply('rl', limited)
    elseif f == nil then
      reply('notfound')
    elseif f.u ~= user and admin ~= '1' and (r.kind == 'direct' or (role ~= 'owner' and role ~= 'moderator')) then
      reply('notyours')
    else
      local q = r.q + 1
      local qs = string.format('%d', q)
      local id = redis.call('XADD', prefix .. 's', '*', 'k', 'd', 'u', user, 'x', tid, 'q', qs)
      bump(r, prefix, id)
      setMentions(prefix, tid, 0, currentMentions(prefix, tid, f), {})
      local dms = string.match(id, '^(%d+)')
      redis.call('HSET', prefix .. 'st', 'd:' .. tid, dms)
      redis.call('HDEL', prefix .. 'st', 'e:' .. tid)
      redis.call('DEL', prefix .. 'rx:' .. tid)
      webhook(whkey, string.sub(prefix, 7, -3))
      local notice = publish(prefix, table.concat({ 'd', id, qs, user, tid }, SEP))
      reply('ok', id, qs, '', '', notice)
    end
  else -- 'r'
    local tid, emoji, on, whkey = a[5], a[6], a[7], a[8]
    local limited = take(a[9])
    local f = target(prefix, tid)
    if limited then
      reply('rl', limited)
    elseif f == nil then
      reply('notfound')
    else
      local rx = prefix .. 'rx:' .. tid
      local cur = redis.call('HGET', rx, emoji)
      local users = split(cur or '')
      local at = nil
      for j, u in ipairs(users) do
        if u == user then at = j end
      end
      if (on == '1' and at ~= nil) or (on ~= '1' and at == nil) then
        reply('noop')
      elseif on == '1' and not cur and redis.call('HLEN', rx) >= 50 then
        reply('invalid')
      else
        if on == '1' then
          users[#users + 1] = user
        else
          table.remove(users, at)
        end
        if #users == 0 then
          redis.call('HDEL', rx, emoji)
        else
          redis.call('HSET', rx, emoji, table.concat(users, ' '))
        end
        local q = r.q + 1
        local qs = string.format('%d', q)
        local id = redis.call('XADD', prefix .. 's', '*', 'k', 'r', 'u', user, 'x', tid, 'j', emoji, 'o', on, 'q', qs)
        bump(r, prefix, id)
        webhook(whkey, string.sub(prefix, 7, -3))
        local notice = publish(prefix, table.concat({ 'r', id, qs, user, tid, emoji, on }, SEP))
        reply('ok', id, qs, '', '', notice)
      end
    end
  end
end

for _, rkey in ipairs(bucketOrder) do
  local b = buckets[rkey]
  if b.dirty then
    redis.call('HSET', rkey, 't', tostring(b.t), 'ts', tostring(b.ts))
    redis.call('PEXPIRE', rkey, math.ceil(burst * 1000 / rate) + 1000)
  end
end

for _, prefix in ipairs(roomOrder) do
  local r = rooms[prefix]
  if r.dirty then
    local stream = prefix .. 's'
    local fv = { 'q', string.format('%d', r.q), 'n', string.format('%d', r.n), 'le', r.lastEntry }
    if r.last then
      fv[#fv + 1] = 'last'
      fv[#fv + 1] = r.last
    end
    -- Retention, approximate like MAXLEN ~ (the stream grows up to 1% past
    -- MAXLEN, then is cut back in one chunk), but exact about what it
    -- removed: the last removed ID is kept in the meta hash, so a resume
    -- position can be told trimmed or not (Redis 7.0 does not record
    -- MAXLEN trims). The state of removed messages goes with them.
    local over = redis.call('XLEN', stream) - maxlen
    if over > math.floor(maxlen / 100) then
      over = math.min(over, 1000)
      local gone = redis.call('XRANGE', stream, '-', '+', 'COUNT', over)
      for _, x in ipairs(gone) do
        local isMsg = true
        for k = 1, #x[2], 2 do
          if x[2][k] == 'k' and x[2][k + 1] ~= 'm' then isMsg = false end
        end
        if isMsg then
          local gid = x[1]
          redis.call('HDEL', prefix .. 'st', 'e:' .. gid, 'd:' .. gid, 'c:' .. gid)
          redis.call('DEL', prefix .. 'rx:' .. gid, prefix .. 'th:' .. gid)
        end
      end
      local lastGone = gone[#gone][1]
      local ms, seq = string.match(lastGone, '^(%d+)-(%d+)$')
      redis.call('XTRIM', stream, 'MINID', ms .. '-' .. (tonumber(seq) + 1))
      fv[#fv + 1] = 'trimmed'
      fv[#fv + 1] = lastGone
    end
    redis.call('HSET', prefix .. 'm', unpack(fv))
    if #r.users > 0 then
      local rv = {}
      for _, u in ipairs(r.users) do
        rv[#rv + 1] = u
        rv[#rv + 1] = r.pos[u]
      end
      redis.call('HSET', prefix .. 'rd', unpack(rv))
    end
  end
end
return out
