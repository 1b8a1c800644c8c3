-- Release several locks, each only if we still hold it.
-- KEYS: the lock keys
-- ARGV[1]: our token
-- Returns how many were released.
local released = 0
for _, key in ipairs(KEYS) do
  if redis.call("GET", key) == ARGV[1] then
    released = released + redis.call("DEL", key)
  end
end
return released
