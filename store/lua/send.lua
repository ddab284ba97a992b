-- send.lua: store one chat message atomically.
-- KEYS[1] room stream, KEYS[2] room meta hash (n = message counter, last = newest id),
-- KEYS[3] room read positions hash (user -> "id n"), KEYS[4] idempotency key,
-- KEYS[5] the user's send-rate bucket.
-- ARGV[1] user, ARGV[2] text, ARGV[3] client_id ('' = none), ARGV[4] MAXLEN (messages kept),
-- ARGV[5] idempotency TTL seconds, ARGV[6] now (ms), ARGV[7] rate per second,
-- ARGV[8] burst.
-- Returns {'ok', id, n} | {'dup', id} | {'rl', retry_after_ms}.
local cid = ARGV[3]
if cid ~= '' then
  local prev = redis.call('GET', KEYS[4])
  if prev then
    return {'dup', prev}
  end
end

-- Token bucket: burst tokens, refilled at rate per second.
local rate, burst, now = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[6])
local b = redis.call('HMGET', KEYS[5], 't', 'ts')
local tokens, ts = tonumber(b[1]), tonumber(b[2])
if tokens == nil or ts == nil then
  tokens, ts = burst, now
end
if now < ts then
  now = ts
end
tokens = math.min(burst, tokens + (now - ts) * rate / 1000)
if tokens < 1 then
  return {'rl', tostring(math.ceil((1 - tokens) * 1000 / rate))}
end
redis.call('HSET', KEYS[5], 't', tostring(tokens - 1), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[5], math.ceil(burst * 1000 / rate) + 1000)

local n = redis.call('HINCRBY', KEYS[2], 'n', 1)
local id
if cid ~= '' then
  id = redis.call('XADD', KEYS[1], '*', 'u', ARGV[1], 't', ARGV[2], 'n', n, 'c', cid)
  redis.call('SET', KEYS[4], id, 'EX', ARGV[5])
else
  id = redis.call('XADD', KEYS[1], '*', 'u', ARGV[1], 't', ARGV[2], 'n', n)
end

-- Retention, approximate like MAXLEN ~ (the stream grows up to 1% past
-- MAXLEN, then is cut back in one chunk), but exact about what it removed:
-- the last removed ID is kept in the meta hash, so a resume position can
-- be told trimmed or not (Redis 7.0 does not record MAXLEN trims).
local maxlen = tonumber(ARGV[4])
local over = redis.call('XLEN', KEYS[1]) - maxlen
if over > math.floor(maxlen / 100) then
  over = math.min(over, 1000)
  local gone = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', over)
  local lastGone = gone[#gone][1]
  local ms, seq = string.match(lastGone, '^(%d+)-(%d+)$')
  redis.call('XTRIM', KEYS[1], 'MINID', ms .. '-' .. (tonumber(seq) + 1))
  redis.call('HSET', KEYS[2], 'trimmed', lastGone)
end
redis.call('HSET', KEYS[2], 'last', id)
-- Sending moves the sender's read position to the message sent.
redis.call('HSET', KEYS[3], ARGV[1], id .. ' ' .. n)
return {'ok', id, tostring(n)}
