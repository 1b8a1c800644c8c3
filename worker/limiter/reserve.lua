-- Reserve the next permitted send times of one sender account, atomically.
-- Semantics: worker/limiter/backend.py (memory.py is the same algorithm in Python).
-- Needs Redis >= 6.2 (SET ... PXAT). Few redis.call()s: each one costs more than the Lua.
-- One slot for a busy account takes TIME, MGET (state and day counter), a ZRANGE per window
-- that holds enough slots to bind, SET of the day counter, ZADD and SET of the state.
--
-- KEYS: [1] slots  sorted set of reserved send times (score = epoch ms, member "ms:seq")
--       [2] state  string "last_ms:seq:slots_expiry_ms:slots_stored": the latest reserved
--                  time, a member counter, the expiry last given to KEYS[1], and at least
--                  as many as KEYS[1] holds (older states lack the last two fields)
--       [3] day    string: slots counted on the account's current local day
-- ARGV: [1] open_from_ms          earliest permitted time (quiet end, not_before, day start)
--       [2] open_until_ms         slots must fall before this (quiet start, day end, horizon)
--       [3] day_limit             per-day cap; 0 = none (KEYS[3] is then left alone)
--       [4] day_end_ms            first instant of the next local day
--       [5] day_count_if_missing  seed for an absent KEYS[3]; -1 = reply 3 so the caller counts
--       [6] n_windows             then n_windows pairs: span_ms, limit
--       [7 + 2 * n_windows]       n_recent: -1 = reply 4 when KEYS[2] is absent; k >= 0 = the
--                                 k send times (epoch ms, from the database) that follow
--                                 seed an absent KEYS[2] (ignored when it exists)
--       [...]                     one gap_ms per requested slot (the caller draws them)
-- Reply: {outcome, resume_at_ms, t1, ..., tk}; outcome 0 = all reserved, 1 = the next slot
--        would fall at or after open_until_ms (resume at that slot's time), 2 = day full
--        (resume at day_end_ms), 3 = day counter missing and no seed, 4 = state missing and
--        n_recent is -1 (nothing reserved for 3 or 4).
-- Clock: redis TIME, so every caller shares one clock whatever its host says.
-- Expiry: slots live until the longest window has passed the last slot (and at most one
-- more longest window: see the end), the state a day after the last slot, a day counter a
-- day after its local day.
-- Size: slots at or before now - longest bind no window. They are dropped whenever the call
-- would take the stored count past the largest limit + SLACK, so KEYS[1] holds at most that
-- many plus this call's slots, or else only slots after now - longest (booked ahead).

local call, max = redis.call, math.max
local clock = call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local open_from = tonumber(ARGV[1])
local open_until = tonumber(ARGV[2])
local day_limit = tonumber(ARGV[3])
local day_end = tonumber(ARGV[4])
local day_seed = tonumber(ARGV[5])
local n_windows = tonumber(ARGV[6])
local DAY_MS = 86400000
local SLACK = 32  -- stale slots kept between two trims: a busy account trims every SLACK slots

local spans, limits, longest, widest = {}, {}, 0, 0
for w = 1, n_windows do
  spans[w] = tonumber(ARGV[5 + 2 * w])
  limits[w] = tonumber(ARGV[6 + 2 * w])
  if spans[w] > longest then longest = spans[w] end
  if limits[w] > widest then widest = limits[w] end
end
local recent_at = 7 + 2 * n_windows
local n_recent = tonumber(ARGV[recent_at])
local first_gap, last_gap = recent_at + 1 + max(n_recent, 0), #ARGV

-- One read for the state and, when a day is counted, its counter.
local state, day_stored
if day_limit > 0 then
  local got = call('MGET', KEYS[2], KEYS[3])
  state, day_stored = got[1], tonumber(got[2])
else
  state = call('GET', KEYS[2])
end
local last, seq, slots_expiry, stored = nil, 0, 0, nil
-- Whether KEYS[1] is known to exist with the expiry recorded in slots_expiry: a lookup found
-- a slot (the call that created the key found none and set one), or this call seeded it.
local slots_seen = false
-- Whether the state was absent and rebuilt: it is then written even if no slot fits.
local seeded = false

-- An absent state (a new account, one idle for a day, or keys Redis lost) starts from the
-- sends the database saw lately: those that can still bind a window go into KEYS[1], and the
-- newest of them, or of the binding slots that outlived the state, is the last slot.
local function seed()
  seeded = true
  local args, newest = {}, nil
  for i = recent_at + 1, recent_at + n_recent do
    local t = tonumber(ARGV[i])
    if newest == nil or t > newest then newest = t end
    if longest > 0 and t > now - longest then
      args[#args + 1] = t
      args[#args + 1] = string.format('%d:r%d', t, i - recent_at)
    end
  end
  local kept = longest > 0 and tonumber(call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2])
  if kept then
    -- New slots may share the kept newest's millisecond: number them past its members.
    for _, member in ipairs(call('ZRANGE', KEYS[1], kept, kept, 'BYSCORE')) do
      seq = max(seq, tonumber(string.match(member, ':(%d+)$')) or 0)
    end
    if kept > now - longest and (newest == nil or kept > newest) then newest = kept end
  end
  last = newest
  if #args == 0 then return end
  for first = 1, #args, 1000 do
    call('ZADD', KEYS[1], unpack(args, first, math.min(first + 999, #args)))
  end
  slots_expiry = newest + 2 * longest + 1000
  call('PEXPIREAT', KEYS[1], slots_expiry)
  slots_seen = true
end

if state then
  local l, s, e, n = string.match(state, '^(%d+):(%d+):?(%d*):?(%d*)')
  last, seq, slots_expiry, stored = tonumber(l), tonumber(s), tonumber(e) or 0, tonumber(n)
else
  if n_recent < 0 then return {4, 0} end
  if day_limit > 0 and day_stored == nil and day_seed < 0 then return {3, 0} end
  seed()
end

if longest > 0 then
  -- Without a count to trust (a new or older state, or slots that may have expired), ask.
  if stored == nil or now >= slots_expiry then stored = call('ZCARD', KEYS[1]) end
  -- Slots at or before now - longest can no longer bind any window: drop them once they
  -- could make the set outgrow what the widest window needs, not on every call.
  if stored + (last_gap - first_gap + 1) > widest + SLACK then
    stored = stored - call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - longest)
  end
end

local placed = {}
-- The limit-th most recent slot, counting those placed by this call, or nil. A window whose
-- limit exceeds what KEYS[1] can hold cannot bind, so it costs no call.
local function latest(limit)
  local n = #placed
  if n >= limit then return placed[n - limit + 1] end
  if stored < limit - n then return nil end
  local found = call('ZRANGE', KEYS[1], n - limit, n - limit, 'WITHSCORES')
  if found[2] then
    slots_seen = true
    return tonumber(found[2])
  end
  return nil
end

-- The day counter is used only once a slot fits the open period, so walking past days that
-- are already booked (the slot lands after open_until) never asks the caller for a count.
local used = nil
local outcome, resume = 0, 0
local earliest = max(now, open_from)
for i = first_gap, last_gap do
  local at = earliest
  if last then at = max(at, last + tonumber(ARGV[i])) end
  for w = 1, n_windows do
    local ref = latest(limits[w])
    if ref then at = max(at, ref + spans[w]) end
  end
  if at >= open_until then
    outcome, resume = 1, at
    break
  end
  if day_limit > 0 then
    if used == nil then
      used = day_stored
      if used == nil and day_seed >= 0 then used = day_seed end
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

-- A stored count that nothing was added to is already what SET would write.
if used ~= nil and (#placed > 0 or day_stored == nil) then
  call('SET', KEYS[3], used + #placed, 'PXAT', day_end + DAY_MS)
end

local reply = {outcome, resume}
if #placed == 0 and not seeded then return reply end
if #placed > 0 and longest > 0 then
  local args = {}
  for j = 1, #placed do
    args[#args + 1] = placed[j]
    args[#args + 1] = string.format('%d:%d', placed[j], seq + j)
    if #args >= 1000 then
      call('ZADD', KEYS[1], unpack(args))
      args = {}
    end
  end
  if #args > 0 then call('ZADD', KEYS[1], unpack(args)) end
  stored = stored + #placed
  -- The slots must outlive the last one by the longest window. A recorded expiry that does
  -- already is kept; otherwise it moves a whole window further, so a busy account renews it
  -- about once per longest window instead of on every call.
  if not (slots_seen and slots_expiry >= last + longest + 1000) then
    slots_expiry = last + 2 * longest + 1000
    call('PEXPIREAT', KEYS[1], slots_expiry)
  end
end
state = string.format('%d:%d:%d:%d', last or 0, seq + #placed, slots_expiry, stored or 0)
call('SET', KEYS[2], state, 'PX', max(last or 0, now) - now + DAY_MS)
for j = 1, #placed do reply[#reply + 1] = placed[j] end
return reply
