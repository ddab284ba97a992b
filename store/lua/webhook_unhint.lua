-- webhook_unhint.lua: drop a room from the cluster's webhook hint set if
-- its hint is not newer than what was found delivered.
--
-- KEYS[1] the hint set. ARGV[1] room, ARGV[2] the ms of the room's newest
-- entry when it was found with nothing pending ('' when it has none).
-- Every hint's score is the ms of an entry of the room (or not more), so
-- a hint added for an entry stored since has a score above ARGV[2] and
-- stays; only an entry of that same millisecond can lose its hint, and
-- the slow sweep of the slot sets finds it again.
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score then
  return 0
end
if ARGV[2] ~= '' and tonumber(score) > tonumber(ARGV[2]) then
  return 0
end
return redis.call('ZREM', KEYS[1], ARGV[1])
