-- send.lua: store a batch of chat messages, each atomically and in order.
-- For send i (0-based), KEYS[5i+1] room stream, KEYS[5i+2] room meta hash
-- (n = message counter, last = newest id, trimmed = last id retention
-- removed), KEYS[5i+3] room read positions hash (user -> "id n"),
-- KEYS[5i+4] idempotency key, KEYS[5i+5] the user's send-rate bucket.
-- ARGV[1] MAXLEN (messages kept), ARGV[2] idempotency TTL seconds,
-- ARGV[3] rate per second, ARGV[4] burst; then per send, from
-- ARGV[5+4i]: user, text, client_id ('' = none), now (ms).
-- Returns three values per send: 'ok', id, n | 'dup', id, '' | 'rl', retry_after_ms, ''.
--
-- One call per batch, not per send: a script call costs Redis more than
-- the few commands a send needs, and a room's counter, newest id, read
-- positions and retention check, and a user's rate bucket, are read once
-- and written once per batch.
local maxlen, ttl = tonumber(ARGV[1]), ARGV[2]
local rate, burst = tonumber(ARGV[3]), tonumber(ARGV[4])
local nsend = #KEYS / 5

local rooms, roomOrder = {}, {}
local buckets, bucketOrder = {}, {}
local out = {}

for i = 0, nsend - 1 do
  local stream, meta, reads, idem, rkey =
    KEYS[5 * i + 1], KEYS[5 * i + 2], KEYS[5 * i + 3], KEYS[5 * i + 4], KEYS[5 * i + 5]
  local user, text, cid, now =
    ARGV[5 + 4 * i], ARGV[6 + 4 * i], ARGV[7 + 4 * i], tonumber(ARGV[8 + 4 * i])

  local prev = false
  if cid ~= '' then
    prev = redis.call('GET', idem)
  end
  if prev then
    out[#out + 1], out[#out + 2], out[#out + 3] = 'dup', prev, ''
  else
    -- Token bucket: burst tokens, refilled at rate per second.
    local b = buckets[rkey]
    if b == nil then
      local v = redis.call('HMGET', rkey, 't', 'ts')
      b = { t = tonumber(v[1]), ts = tonumber(v[2]), dirty = false }
      if b.t == nil or b.ts == nil then
        b.t, b.ts = burst, now
      end
      buckets[rkey] = b
      bucketOrder[#bucketOrder + 1] = rkey
    end
    if now < b.ts then
      now = b.ts
    end
    local tokens = math.min(burst, b.t + (now - b.ts) * rate / 1000)
    if tokens < 1 then
      out[#out + 1], out[#out + 2], out[#out + 3] = 'rl', tostring(math.ceil((1 - tokens) * 1000 / rate)), ''
    else
      b.t, b.ts, b.dirty = tokens - 1, now, true

      local r = rooms[stream]
      if r == nil then
        r = { meta = meta, reads = reads, n = tonumber(redis.call('HGET', meta, 'n') or '0'), pos = {}, users = {} }
        rooms[stream] = r
        roomOrder[#roomOrder + 1] = stream
      end
      r.n = r.n + 1
      local id
      if cid ~= '' then
        id = redis.call('XADD', stream, '*', 'u', user, 't', text, 'n', string.format('%d', r.n), 'c', cid)
        redis.call('SET', idem, id, 'EX', ttl)
      else
        id = redis.call('XADD', stream, '*', 'u', user, 't', text, 'n', string.format('%d', r.n))
      end
      r.last = id
      -- Sending moves the sender's read position to the message sent.
      if r.pos[user] == nil then
        r.users[#r.users + 1] = user
      end
      r.pos[user] = id .. ' ' .. r.n
      out[#out + 1], out[#out + 2], out[#out + 3] = 'ok', id, string.format('%d', r.n)
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

for _, stream in ipairs(roomOrder) do
  local r = rooms[stream]
  -- Retention, approximate like MAXLEN ~ (the stream grows up to 1% past
  -- MAXLEN, then is cut back in one chunk), but exact about what it
  -- removed: the last removed ID is kept in the meta hash, so a resume
  -- position can be told trimmed or not (Redis 7.0 does not record MAXLEN
  -- trims).
  local over = redis.call('XLEN', stream) - maxlen
  if over > math.floor(maxlen / 100) then
    over = math.min(over, 1000)
    local gone = redis.call('XRANGE', stream, '-', '+', 'COUNT', over)
    local lastGone = gone[#gone][1]
    local ms, seq = string.match(lastGone, '^(%d+)-(%d+)$')
    redis.call('XTRIM', stream, 'MINID', ms .. '-' .. (tonumber(seq) + 1))
    redis.call('HSET', r.meta, 'n', string.format('%d', r.n), 'last', r.last, 'trimmed', lastGone)
  else
    redis.call('HSET', r.meta, 'n', string.format('%d', r.n), 'last', r.last)
  end
  local fv = {}
  for _, u in ipairs(r.users) do
    fv[#fv + 1] = u
    fv[#fv + 1] = r.pos[u]
  end
  redis.call('HSET', r.reads, unpack(fv))
end
return out
