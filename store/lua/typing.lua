-- typing.lua: relay a typing event at most once per throttle period.
-- KEYS[1] throttle key of (room, user). ARGV[1] period (ms), ARGV[2] channel, ARGV[3] payload.
if redis.call('SET', KEYS[1], '1', 'PX', ARGV[1], 'NX') then
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return 1
end
return 0
