-- ratelimit-redis: one atomic batch of charges, any mix of the four strategies.
--
-- This file defines `batch(KEYS, ARGV)`. The client appends the entry point: a
-- `redis.register_function` for a function library (Redis 7: the definitions below then run
-- once per server, not once per call), or `return batch(KEYS, ARGV)` for EVALSHA.
--
-- The semantics are those of the state machines in `ratelimit-core`, step for step; the memory
-- backend and this script are tested against each other with explicit times.
--
-- KEYS  one per charge, its counter; a moving window has two: its log (a list) and its total.
-- ARGV  [1] op: 'h' hit, 't' test, 'r' refund, 'x' rejected elsewhere (a test, then each
--           charge's on_reject where it fits: this slot's part of a cross-slot batch that
--           another slot rejected)
--       [2] now: nanoseconds since the Unix epoch in decimal, or '' to read the server's TIME
--       [3] TTL grace in milliseconds, added to every key's TTL (for clients' clocks)
--       then seven per charge: strategy ('f' fixed, 'm' moving, 's' sliding, 'g' gcra), amount,
--       window (ns), GCRA emission interval (ns), cost, need (room required, at least cost),
--       on_reject (charged when a hit of the batch is rejected, where it fits; 0 for none)
-- Reply {all allowed (1/0), then per charge: allowed (1/0), remaining, reset (seconds and
--       nanoseconds since the epoch: two integers), retry-after (ns, -1 for never)}
--
-- Arithmetic. Lua numbers are doubles: integers are exact up to 2^53. Absolute times are
-- stored as decimal strings of nanoseconds and handled as nanoseconds relative to now, so every
-- quantity the strategies compute stays below 2^53 for windows up to 2^52 ns (52 days); products
-- that may not (count x duration) go through `muldivmod`, which is exact for any operands below
-- 2^53. Longer windows (years) are computed with the double's precision, a few nanoseconds.

local E = 1000000000
local P53 = 9007199254740992

-- The call being served (set by `batch` at each call; the helpers below read them).
local op, grace, now_s, now_n

-- Floor division and remainder of integers, b > 0; exact while a and b are below 2^53.
local function divmod(a, b)
  local q = math.floor(a / b)
  local r = a - q * b
  if r < 0 then
    q = q - 1
    r = r + b
  elseif r >= b then
    q = q + 1
    r = r - b
  end
  return q, r
end

-- floor(a * b / c) and (a * b) mod c for integers 0 <= a, b < 2^53 and 0 < c <= 2^53: binary
-- long multiplication modulo c, every intermediate below c. The quotient must fit 2^53.
local function muldivmod(a, b, c)
  if a * b < P53 then
    return divmod(a * b, c)
  end
  local qa, ra = divmod(a, c)
  local q, r = 0, 0
  local bit = 1
  while bit * 2 <= b do
    bit = bit * 2
  end
  while bit >= 1 do
    q = q * 2
    if r >= c - r then
      r = r - (c - r)
      q = q + 1
    else
      r = r + r
    end
    if b >= bit then
      b = b - bit
      q = q + qa
      if r >= c - ra then
        r = r - (c - ra)
        q = q + 1
      else
        r = r + ra
      end
    end
    bit = bit / 2
  end
  return q, r
end

-- An absolute time (decimal ns string) as ns relative to now.
local function rel(a)
  local len = #a
  if len > 9 then
    return (tonumber(string.sub(a, 1, len - 9)) - now_s) * E + (tonumber(string.sub(a, len - 8)) - now_n)
  end
  return -now_s * E + (tonumber(a) - now_n)
end

-- A time relative to now as an absolute decimal ns string, clamped at the epoch.
local function abs(r)
  local q, n = divmod(r, E)
  local s = now_s + q
  n = n + now_n
  if n >= E then
    s = s + 1
    n = n - E
  end
  if s < 0 then
    return '0'
  elseif s == 0 then
    return string.format('%.0f', n)
  end
  return string.format('%.0f%09.0f', s, n)
end

local function split2(v)
  local a, b = string.match(v, '^(%d+) (%d+)$')
  return a, tonumber(b)
end

-- Saves a single-value state: SET with a TTL up to the instant it becomes idle, or DEL when it
-- already is (an idle state behaves exactly as no state).
local function save(key, value, idle)
  if idle == nil or idle <= 0 then
    redis.call('DEL', key)
  else
    redis.call('SET', key, value, 'PX', math.ceil(idle / 1000000) + grace)
  end
end

-- The strategies, each defined on first use: a script run (EVALSHA) pays only for the closures
-- of the strategies its batch uses (defining all four costs a few microseconds); a function
-- library keeps them from call to call. (Function libraries have no `setmetatable`.)
local define = {}
local S = {}
local function strategy(kind)
  local m = S[kind]
  if not m then
    m = define[kind]()
    S[kind] = m
  end
  return m
end

-- Fixed window: {start, count}; the window opens at the first hit after the last one closed.
function define.f()
  local M = {}
  function M.load(ch)
    local st = { start = -P53, count = 0 }
    local v = redis.call('GET', ch.key)
    if v then
      local a, c = split2(v)
      st.start = rel(a)
      st.count = c
    end
    return st
  end
  local function fixed_used(st, L)
    if st.count > 0 and -st.start < L.w then
      return st.count
    end
    return 0
  end
  function M.fits(st, L, cost)
    return fixed_used(st, L) + cost <= L.amount
  end
  function M.hit(st, L, cost)
    local used = fixed_used(st, L)
    if used == 0 then
      st.start = 0
    end
    st.count = used + cost
  end
  function M.refund(st, L, cost)
    if fixed_used(st, L) > 0 then
      st.count = math.max(0, st.count - cost)
    end
  end
  function M.stats(st, L)
    local used = fixed_used(st, L)
    if used > 0 then
      return L.amount - used, st.start + L.w
    end
    return L.amount, 0
  end
  function M.retry(st, L, cost)
    return math.max(0, st.start + L.w)
  end
  function M.save(st, ch)
    local idle = nil
    if st.count > 0 then
      idle = st.start + ch.L.w
    end
    save(ch.key, abs(st.start) .. ' ' .. string.format('%.0f', st.count), idle)
  end
  return M
end

-- Sliding window counter: {bucket, prev, cur}, buckets aligned to the epoch.
function define.s()
  local M = {}
  function M.load(ch)
    local st = { b = 0, p = 0, c = 0 }
    local v = redis.call('GET', ch.key)
    if v then
      local b, p, c = string.match(v, '^(%d+) (%d+) (%d+)$')
      st.b, st.p, st.c = tonumber(b), tonumber(p), tonumber(c)
    end
    return st
  end
  -- The window is a whole number of seconds, so the bucket of now is floor(now_s / window_s).
  local function bucket_start(b, L)
    return (b * L.ws - now_s) * E - now_n
  end
  local function view(st, L)
    local b = divmod(now_s, L.ws)
    local at = 0
    local p, c
    if b <= st.b then
      if b < st.b then
        b = st.b
        at = bucket_start(b, L)
      end
      p, c = st.p, st.c
    elseif b == st.b + 1 then
      p, c = st.c, 0
    else
      p, c = 0, 0
    end
    local fin = bucket_start(b + 1, L)
    return { b = b, p = p, c = c, at = at, fin = fin, left = fin - at }
  end
  local function weighted(v, L)
    if v.p == 0 then
      return v.c
    end
    return (muldivmod(v.p, v.left, L.w)) + v.c
  end
  local function store(st, v)
    st.b, st.p, st.c = v.b, v.p, v.c
  end
  function M.fits(st, L, cost)
    return weighted(view(st, L), L) + cost <= L.amount
  end
  function M.hit(st, L, cost)
    local v = view(st, L)
    v.c = v.c + cost
    store(st, v)
  end
  function M.refund(st, L, cost)
    local v = view(st, L)
    local from_cur = math.min(v.c, cost)
    v.c = v.c - from_cur
    v.p = math.max(0, v.p - (cost - from_cur))
    store(st, v)
  end
  function M.stats(st, L)
    local v = view(st, L)
    local remaining = math.max(0, L.amount - weighted(v, L))
    local reset_in = nil
    if v.p > 0 then
      -- left mod (window / prev) == ((left * prev) mod window) / prev
      local _, m = muldivmod(v.left, v.p, L.w)
      reset_in = (divmod(m, v.p))
    end
    if v.c > 0 then
      reset_in = reset_in and math.min(reset_in, v.left) or v.left
    end
    return remaining, reset_in or 0
  end
  -- The earliest instant (relative) at which floor(p * left / window) <= k, `left` in 1..=window
  -- measured to `bucket_end`; nil when there is none.
  local function earliest(p, k, bucket_end, W)
    if p == 0 then
      return bucket_end - W
    end
    local max_left
    if k + 1 > p then
      max_left = W -- ((k + 1) * W - 1) / p > W
    else
      local q, r = muldivmod(k + 1, W, p)
      if r == 0 then
        q = q - 1
      end
      max_left = q
    end
    if max_left < 1 then
      return nil
    end
    return bucket_end - math.min(max_left, W)
  end
  function M.retry(st, L, cost)
    local v = view(st, L)
    local at = nil
    local t = v.c + cost
    if t <= L.amount then
      at = earliest(v.p, L.amount - t, v.fin, L.w)
    end
    if at == nil then
      at = earliest(v.c, L.amount - cost, v.fin + L.w, L.w) or (v.fin + L.w)
    end
    if at <= v.at then
      return 0
    end
    return at
  end
  function M.save(st, ch)
    local idle = nil
    if st.c > 0 then
      idle = bucket_start(st.b + 2, ch.L)
    elseif st.p > 0 then
      idle = bucket_start(st.b + 1, ch.L)
    end
    save(ch.key, string.format('%.0f %.0f %.0f', st.b, st.p, st.c), idle)
  end
  return M
end

-- GCRA: {tat}; a missing or past tat behaves exactly as tat = now.
function define.g()
  local M = {}
  function M.load(ch)
    local v = redis.call('GET', ch.key)
    local tat = 0
    if v then
      tat = math.max(0, rel(v))
    end
    return { tat = tat }
  end
  function M.fits(st, L, cost)
    return cost <= L.amount and st.tat + cost * L.t <= L.amount * L.t
  end
  function M.hit(st, L, cost)
    st.tat = st.tat + cost * L.t
  end
  function M.refund(st, L, cost)
    st.tat = math.max(0, st.tat - cost * L.t)
  end
  function M.stats(st, L)
    if L.t == 0 then
      return 0, st.tat
    end
    local q, r = divmod(st.tat, L.t)
    if r > 0 then
      q = q + 1
    end
    return math.max(0, L.amount - q), st.tat
  end
  function M.retry(st, L, cost)
    return math.max(0, st.tat + cost * L.t - L.amount * L.t)
  end
  function M.save(st, ch)
    save(ch.key, abs(st.tat), st.tat)
  end
  return M
end

-- Moving window: a list of 'at cost' entries, oldest first, and their total. Expired entries
-- are dropped when the key is first touched (they count for nothing at any later time).
function define.m()
  local M = {}
  local function entry(v)
    local a, c = split2(v)
    return rel(a), c, a
  end
  function M.load(ch)
    local st = { total = tonumber(redis.call('GET', ch.key2) or '0') }
    while true do
      local v = redis.call('LINDEX', ch.key, 0)
      if not v then
        break
      end
      local at, c = entry(v)
      if -at < ch.L.w then
        break
      end
      redis.call('LPOP', ch.key)
      st.total = math.max(0, st.total - c)
      st.dirty = true
    end
    return st
  end
  function M.fits(st, L, cost)
    return st.total + cost <= L.amount
  end
  function M.hit(st, L, cost, ch)
    local v = redis.call('LINDEX', ch.key, -1)
    local at, c, a
    if v then
      at, c, a = entry(v)
    end
    if v and at >= 0 then
      redis.call('LSET', ch.key, -1, a .. ' ' .. string.format('%.0f', c + cost))
    else
      redis.call('RPUSH', ch.key, abs(0) .. ' ' .. string.format('%.0f', cost))
    end
    st.total = st.total + cost
  end
  function M.refund(st, L, cost, ch)
    while cost > 0 do
      local v = redis.call('LINDEX', ch.key, -1)
      if not v then
        return
      end
      local at, c, a = entry(v)
      if -at >= L.w then
        return
      end
      local take = math.min(c, cost)
      c = c - take
      cost = cost - take
      st.total = math.max(0, st.total - take)
      if c == 0 then
        redis.call('RPOP', ch.key)
      else
        redis.call('LSET', ch.key, -1, a .. ' ' .. string.format('%.0f', c))
      end
    end
  end
  function M.stats(st, L, ch)
    local v = redis.call('LINDEX', ch.key, 0)
    local reset = L.w
    if v then
      reset = entry(v) + L.w
    end
    return math.max(0, L.amount - st.total), reset
  end
  function M.retry(st, L, cost, ch)
    local used = st.total
    local last = 0
    for _, v in ipairs(redis.call('LRANGE', ch.key, 0, -1)) do
      local at, c = entry(v)
      used = math.max(0, used - c)
      last = at + L.w
      if used + cost <= L.amount then
        break
      end
    end
    return math.max(0, last)
  end
  function M.save(st, ch)
    local v = redis.call('LINDEX', ch.key, -1)
    local idle = nil
    if v then
      idle = entry(v) + ch.L.w
    end
    if idle == nil or idle <= 0 then
      redis.call('DEL', ch.key, ch.key2)
    else
      local ms = math.ceil(idle / 1000000) + grace
      redis.call('PEXPIRE', ch.key, ms)
      redis.call('SET', ch.key2, string.format('%.0f', st.total), 'PX', ms)
    end
  end
  return M
end

-- The states of the call's counters, by key, loaded on first use.
local states
local function state(ch)
  local st = states[ch.key]
  if not st then
    st = ch.M.load(ch)
    st.ch = ch
    states[ch.key] = st
  end
  return st
end
local function fits(ch, cost)
  return cost == 0 or ch.M.fits(state(ch), ch.L, cost, ch)
end

-- The batch: the whole call. Defined once, whether loaded as a function library (FCALL) or
-- run as a script (EVALSHA); the entry point that calls it is added by the client.
local function batch(KEYS, ARGV)
  op = ARGV[1]
  grace = tonumber(ARGV[3])
  if ARGV[2] == '' then
    local t = redis.call('TIME')
    now_s = tonumber(t[1])
    now_n = tonumber(t[2]) * 1000
  else
    local a = ARGV[2]
    local len = #a
    if len > 9 then
      now_s = tonumber(string.sub(a, 1, len - 9))
      now_n = tonumber(string.sub(a, len - 8))
    else
      now_s = 0
      now_n = tonumber(a)
    end
  end

  local charges = {}
  local ki = 1
  for i = 1, (#ARGV - 3) / 7 do
    local at = 3 + (i - 1) * 7
    local w = tonumber(ARGV[at + 3])
    local ch = {
      kind = ARGV[at + 1],
      L = { amount = tonumber(ARGV[at + 2]), w = w, ws = w / E, t = tonumber(ARGV[at + 4]) },
      cost = tonumber(ARGV[at + 5]),
      need = tonumber(ARGV[at + 6]),
      rej = tonumber(ARGV[at + 7]),
      key = KEYS[ki],
    }
    ch.M = strategy(ch.kind)
    ki = ki + 1
    if ch.kind == 'm' then
      ch.key2 = KEYS[ki]
      ki = ki + 1
    end
    ch.room = math.max(ch.cost, ch.need)
    charges[i] = ch
  end

  states = {}
  -- Charges on the same counter are tested together: their costs add up.
  local together = {}
  for _, ch in ipairs(charges) do
    together[ch.key] = (together[ch.key] or 0) + ch.cost
  end

  local allowed = {}
  local all = true
  for i, ch in ipairs(charges) do
    local ok = true
    if op ~= 'r' then
      ok = fits(ch, ch.room) and fits(ch, together[ch.key])
    end
    allowed[i] = ok
    all = all and ok
  end

  for _, ch in ipairs(charges) do
    local st = state(ch)
    if op == 'h' and all and ch.cost > 0 then
      ch.M.hit(st, ch.L, ch.cost, ch)
      st.dirty = true
    elseif op == 'r' then
      ch.M.refund(st, ch.L, ch.cost, ch)
      st.dirty = true
    elseif (op == 'x' or (op == 'h' and not all)) and ch.rej > 0 and fits(ch, ch.rej) then
      -- A rejected hit charges what its charges ask for on a rejection, where it fits.
      ch.M.hit(st, ch.L, ch.rej, ch)
      st.dirty = true
    end
  end

  local out = { all and 1 or 0 }
  for i, ch in ipairs(charges) do
    local st = state(ch)
    local remaining, reset = ch.M.stats(st, ch.L, ch)
    local retry = 0
    if not allowed[i] then
      if ch.room > ch.L.amount then
        retry = -1
      elseif not fits(ch, ch.room) then
        retry = ch.M.retry(st, ch.L, ch.room, ch)
      end
    end
    out[#out + 1] = allowed[i] and 1 or 0
    out[#out + 1] = remaining
    -- The reset as whole seconds and nanoseconds since the epoch (two integers: no decimal
    -- formatting), clamped at the epoch.
    local q, n = divmod(reset, E)
    n = n + now_n
    if n >= E then
      q = q + 1
      n = n - E
    end
    if now_s + q < 0 then
      q, n = -now_s, 0
    end
    out[#out + 1] = now_s + q
    out[#out + 1] = n
    out[#out + 1] = retry
  end

  for _, st in pairs(states) do
    if st.dirty then
      st.ch.M.save(st, st.ch)
    end
  end

  return out
end
