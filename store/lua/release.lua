-- release.lua: take back one attempt that attempt.lua counted, from each
-- of KEYS (a login that succeeded is no failure). A counter never goes
-- below 0, and keeps its window.
for _, key in ipairs(KEYS) do
  local n = tonumber(redis.call('GET', key) or '0')
  if n > 0 then
    redis.call('DECR', key)
  end
end
return 0
