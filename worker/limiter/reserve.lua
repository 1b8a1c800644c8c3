-- Reserve the next permitted send times of one sender account, atomically.
-- Semantics: worker/limiter/backend.py (memory.py is the same algorithm in Python).
-- Needs Redis >= 6.2 (SET ... PXAT). Few redis.call()s: each one costs more than the Lua.
--
-- KEYS: [1] slots  sorted set of reserved send times (score = epoch ms, member "ms:seq")
--       [2] state  string "last_ms:seq": the latest reserved time and a member counter
--       [3] day    string: slots counted on the account's current local day
-- ARGV: [1] open_from_ms          earliest permitted time (quiet end, not_before, day start)
--       [2] open_until_ms         slots must fall before this (quiet start, day end, horizon)
--       [3] day_limit             per-day cap; 0 = none (KEYS[3] is then left alone)
--       [4] day_end_ms            first instant of the next local day
--       [5] day_count_if_missing  seed for an absent KEYS[3]; -1 = reply 3 so the caller counts
--       [6] n_windows             then n_windows pairs: span_ms, limit
--       [7 + 2 * n_windows ...]   one gap_ms per requested slot (the caller draws them)
-- Reply: {outcome, resume_at_ms, t1, ..., tk}; outcome 0 = all reserved, 1 = the next slot
--        would fall at or after open_until_ms (resume at that slot's time), 2 = day full
--        (resume at day_end_ms), 3 = day counter missing and no seed (nothing reserved).
-- Clock: redis TIME, so every caller shares one clock whatever its host says.
-- Expiry: slots live until the longest window has passed the last slot, the state a day
-- after the last slot, a day counter a day after its local day.

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local open_from = tonumber(ARGV[1])
local open_until = tonumber(ARGV[2])
local day_limit = tonumber(ARGV[3])
local day_end = tonumber(ARGV[4])
local day_seed = tonumber(ARGV[5])
local n_windows = tonumber(ARGV[6])
local DAY_MS = 86400000

local spans, limits, longest = {}, {}, 0
for w = 1, n_windows do
  spans[w] = tonumber(ARGV[5 + 2 * w])
  limits[w] = tonumber(ARGV[6 + 2 * w])
  if spans[w] > longest then longest = spans[w] end
end
local first_gap = 7 + 2 * n_windows

local last, seq = nil, 0
local state = redis.call('GET', KEYS[2])
if state then
  local sep = string.find(state, ':', 1, true)
  last = tonumber(string.sub(state, 1, sep - 1))
  seq = tonumber(string.sub(state, sep + 1))
end

-- Slots at or before now - longest can no longer bind any window: drop them now and then
-- (every 16th slot, and on every batch) to bound memory without a call each time.
if longest > 0 and (seq % 16 == 0 or #ARGV - first_gap >= 15) then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - longest)
end

local placed = {}
-- The limit-th most recent slot, counting those placed by this call, or nil.
local function latest(limit)
  local n = #placed
  if n >= limit then return placed[n - limit + 1] end
  local found = redis.call('ZRANGE', KEYS[1], n - limit, n - limit, 'WITHSCORES')
  if found[2] then return tonumber(found[2]) end
  return nil
end

-- The day counter is read only once a slot fits the open period, so walking past days that
-- are already booked (the slot lands after open_until) never asks the caller for a count.
local used = nil
local function day_used()
  local stored = redis.call('GET', KEYS[3])
  if stored then return tonumber(stored) end
  if day_seed >= 0 then return day_seed end
  return nil
end

local outcome, resume = 0, 0
local earliest = math.max(now, open_from)
for i = first_gap, #ARGV do
  local at = earliest
  if last then at = math.max(at, last + tonumber(ARGV[i])) end
  for w = 1, n_windows do
    local ref = latest(limits[w])
    if ref then at = math.max(at, ref + spans[w]) end
  end
  if at >= open_until then
    outcome, resume = 1, at
    break
  end
  if day_limit > 0 then
    if used == nil then
      used = day_used()
      if used == nil then return {3, 0} end
    end
    if used + #placed >= day_limit then
      outcome, resume = 2, day_end
      break
    end
  end
  placed[#placed + 1] = at
  last = at
end

if used ~= nil then
  redis.call('SET', KEYS[3], used + #placed, 'PXAT', day_end + DAY_MS)
end

local reply = {outcome, resume}
if #placed > 0 then
  if longest > 0 then
    local args = {}
    for j = 1, #placed do
      args[#args + 1] = placed[j]
      args[#args + 1] = string.format('%d:%d', placed[j], seq + j)
      if #args >= 1000 then
        redis.call('ZADD', KEYS[1], unpack(args))
        args = {}
      end
    end
    if #args > 0 then redis.call('ZADD', KEYS[1], unpack(args)) end
    redis.call('PEXPIRE', KEYS[1], last - now + longest + 1000)
  end
  state = string.format('%d:%d', last, seq + #placed)
  redis.call('SET', KEYS[2], state, 'PX', last - now + DAY_MS)
  for j = 1, #placed do reply[#reply + 1] = placed[j] end
end
return reply
