-- members.lua: one page of a room's members, sorted by name.
-- KEYS[1] the room's stream (routing only). ARGV[1] room key prefix,
-- ARGV[2] after (a name, '' from the first), ARGV[3] how many.
-- Returns a flat list: user, role, online (0|1), …
local p, after, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
local from = '-'
if after ~= '' then
  from = '(' .. after
end
local names = redis.call('ZRANGEBYLEX', p .. 'mz', from, '+', 'LIMIT', 0, n)
local out = {}
for _, u in ipairs(names) do
  out[#out + 1] = u
  out[#out + 1] = redis.call('HGET', p .. 'mem', u) or 'member'
  local c = tonumber(redis.call('HGET', p .. 'pc', u) or '0')
  out[#out + 1] = (c > 0) and 1 or 0
end
return out
