-- webhook_lease.lua: renew or release a webhook delivery lease.
--
-- KEYS[1] the lease. ARGV[1] 'renew' or 'release', ARGV[2] owner,
-- ARGV[3] lease (ms). Returns 1 when the lease was the owner's, else 0
-- (and changes nothing).
if redis.call('GET', KEYS[1]) ~= ARGV[2] then
  return 0
end
if ARGV[1] == 'renew' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
else
  redis.call('DEL', KEYS[1])
end
return 1
