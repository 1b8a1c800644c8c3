-- Give back reserved send times of one sender account that will not be used, atomically.
-- Semantics: worker/limiter/backend.py (memory.py is the same algorithm in Python).
-- Not on the hot path: a lane calls it for the slots it skipped, replaced or cut off.
--
-- KEYS: [1] slots  sorted set of reserved send times (as in reserve.lua)
--       [2] state  string "last_ms:seq:slots_expiry_ms:slots_stored" (as in reserve.lua)
--       [3] day    string: slots counted on the local day the released slots were counted under
-- ARGV: [1] longest_ms  the longest window span the slots were reserved under; 0 = no windows
--                       (reserve.lua then keeps no slots, and KEYS[1] is left alone)
--       [2] count_day   1 = lower KEYS[3] by the number of released times, 0 = leave it alone
--       [3 ...]         the released times (epoch ms); one slot goes per time given
-- Reply: how many members left KEYS[1] (times not found there were trimmed, or never kept).
-- Clock: redis TIME, as in reserve.lua. Expiry: every key keeps its TTL.

local call, max, min = redis.call, math.max, math.min
local clock = call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local longest = tonumber(ARGV[1])
local released = #ARGV - 2

local wanted = {}  -- time -> how many slots at that time go back
for i = 3, #ARGV do
  local t = tonumber(ARGV[i])
  wanted[t] = (wanted[t] or 0) + 1
end

-- One member per released time: two slots may share a millisecond and differ by name only.
local function remove_slots()
  local members = {}
  for t, count in pairs(wanted) do
    local found = call('ZRANGE', KEYS[1], t, t, 'BYSCORE', 'LIMIT', 0, count)
    for _, member in ipairs(found) do members[#members + 1] = member end
  end
  local removed = 0
  for first = 1, #members, 1000 do
    removed = removed + call('ZREM', KEYS[1], unpack(members, first, min(first + 999, #members)))
  end
  return removed
end

-- The latest slot left that can still bind a window, or else the latest an untracked one
-- can be: the gap of the next slot counts from there, never from a slot given back.
local function new_last(last)
  local floor = now - longest
  local newest = call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  if newest[2] and tonumber(newest[2]) > floor then floor = tonumber(newest[2]) end
  return min(last, floor)
end

local removed = 0
if longest > 0 then
  removed = remove_slots()
  local state = call('GET', KEYS[2])
  if state then
    local l, s, e, n = string.match(state, '^(%d+):(%d+):?(%d*):?(%d*)')
    local last = tonumber(l)
    if wanted[last] then last = new_last(last) end
    if n ~= '' then
      state = string.format('%d:%d:%s:%d', last, tonumber(s), e, max(0, tonumber(n) - removed))
    else
      state = string.format('%d:%d', last, tonumber(s))  -- reserve.lua counts the slots again
    end
    call('SET', KEYS[2], state, 'KEEPTTL')
  end
end

if ARGV[2] == '1' then
  local used = tonumber(call('GET', KEYS[3]))
  if used then call('SET', KEYS[3], max(0, used - released), 'KEEPTTL') end
end
return removed
