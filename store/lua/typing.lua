-- typing.lua: relay a typing event at most once per throttle period per
-- user and room, across instances.
-- KEYS[1] the room's stream (routing only). ARGV[1] room key prefix,
-- ARGV[2] user, ARGV[3] period (ms), ARGV[4] publish command.
if redis.call('SET', ARGV[1] .. 'ty:' .. ARGV[2], '1', 'PX', ARGV[3], 'NX') then
  redis.call(ARGV[4], ARGV[1] .. 'c', 'Y\31\31\31' .. ARGV[2])
  return 1
end
return 0
