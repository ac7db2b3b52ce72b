-- ratekeeper-redis: one atomic batch of charges, any mix of the four strategies.
--
-- This file defines `batch(KEYS, ARGV)`. The client appends the entry point: a
-- `redis.register_function` for a function library (Redis 7: the definitions below then run
-- once per server, not once per call), or `return batch(KEYS, ARGV)` for EVALSHA. A test
-- ('t') writes nothing, so the library registers it a second time as a `no-writes` function,
-- which Redis runs even when it refuses writes (out of memory).
--
-- The semantics are those of the state machines in `ratekeeper-core`, step for step; the memory
-- backend and this script are tested against each other with explicit times.
--
-- KEYS  one per charge, its counter; a moving window has two: its log (a list) and its total.
-- ARGV  [1] op: 'h' hit, 't' test, 'r' refund, 'x' rejected elsewhere (a test, then each
--           charge's on_reject where it fits: this slot's part of a cross-slot batch that
--           another slot rejected)
--       [2] now: nanoseconds since the Unix epoch in decimal, or '' to read the server's TIME
--       [3] TTL grace in milliseconds, added to every key's TTL (for clients' clocks)
--       then two per charge:
--       the limit '<strategy> <amount> <window ns> <GCRA emission interval ns>', strategy 'f'
--           fixed, 'm' moving, 's' sliding or 'g' gcra
--       the costs '<cost> <need> <on_reject>': need is the room required (at least cost),
--           on_reject is charged when a hit of the batch is rejected, where it fits (0: none);
--           a refund may add '<charged at, ns since the epoch>': it then gives back only what
--           the charge made at that instant still holds
-- Reply {all allowed (1/0), now (seconds and nanoseconds since the epoch: the instant the call
--       ran at, what a refund names), then per charge: allowed (1/0), remaining, reset
--       (seconds and nanoseconds), retry-after (ns, -1 for never)}
-- Several batches may share one call (ARGV[1] 'M', see `many` at the end): concurrent
-- decisions of one client process, coalesced into one call that answers each.
--
-- Stored values, little-endian doubles (`struct.pack`), every one an integer below 2^53; an
-- instant is two of them, seconds and nanoseconds since the epoch. Fixed window: start, count
-- (3 doubles); GCRA: the theoretical arrival time, the key's expiry in ms (3); sliding
-- window: bucket, previous, current, the key's expiry in ms (4); moving window: a list of
-- entries (instant, cost: 3 doubles each), oldest first, and their total (1). Every key
-- expires no earlier than its state becomes idle (an idle state behaves exactly as no state),
-- plus the grace, and no later than a window after it was last written (two for a sliding
-- window).
--
-- Arithmetic. Lua numbers are doubles: integers are exact up to 2^53. Absolute times are
-- handled as nanoseconds relative to now, so every quantity the strategies compute stays below
-- 2^53 for windows up to 2^52 ns (52 days); products that may not (count x duration) go
-- through `muldivmod`, which is exact for any operands below 2^53. Longer windows (years) are
-- computed with the double's precision, a few nanoseconds.
--
-- Cost. This runs on the one thread of a Redis server that a whole fleet shares, so the hot
-- path allocates almost nothing and converts no decimal text it can avoid (in Redis's Lua a
-- `tonumber` or a `string.format` costs more than a `GET`): a call's charges and states live
-- in flat arrays kept from call to call (indexed by charge), not in a table per charge; state
-- is stored in binary; a limit or a cost is parsed once per server, not once per call.

local E = 1000000000
-- Library functions, looked up once (a function library may not read them while it loads;
-- in Redis's Lua a global's field costs more than a local).
local floor, max, min, ceil, spack, sunpack, call, match
local function bind()
  floor, max, min, ceil = math.floor, math.max, math.min, math.ceil
  spack, sunpack, call, match = struct.pack, struct.unpack, redis.call, string.match
end
local P53 = 9007199254740992

-- Floor division and remainder of integers, b > 0; exact while a and b are below 2^53.
local function divmod(a, b)
  local q = floor(a / b)
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

-- The call being served (set by `batch`; the helpers below read them).
local op, grace, now_s, now_n

-- Decimal nanoseconds since the epoch (an argument) as seconds and nanoseconds: split as text,
-- since the whole number is past a double's exact range.
local function instant(text)
  local len = #text
  if len > 9 then
    return tonumber(string.sub(text, 1, len - 9)), tonumber(string.sub(text, len - 8))
  end
  return 0, tonumber(text)
end

-- Limits and costs as parsed from their arguments, by text: an application has a few
-- distinct ones, and a function library keeps them from call to call (at most PARSED_MAX).
local PARSED_MAX = 4096
local parsed, known = {}, 0
local function remember(text, value)
  if known >= PARSED_MAX then
    parsed, known = {}, 0
  end
  parsed[text] = value
  known = known + 1
  return value
end
-- {strategy, amount, window ns, window s, emission interval ns}
local function limit(text)
  local L = parsed[text]
  if not L then
    local k, a, w, t = match(text, '^(%a) (%d+) (%d+) (%d+)$')
    w = tonumber(w)
    L = remember(text, { k, tonumber(a), w, w / E, tonumber(t) })
  end
  return L
end
-- {cost, need, on_reject, and for a refund that names its charge's instant, its seconds and
-- nanoseconds (such a text is not remembered: each names another instant)}
local function costs(text)
  local Q = parsed[text]
  if not Q then
    local c, n, r, at = match(text, '^(%d+) (%d+) (%d+) ?(%d*)$')
    Q = { tonumber(c), tonumber(n), tonumber(r) }
    if at == '' then
      return remember(text, Q)
    end
    Q[4], Q[5] = instant(at)
  end
  return Q
end

-- The call's charges, indexed 1..count. `owner[i]` is the first charge on the same key as
-- charge i: the state of a counter lives at its owner's index, and charges on one key share
-- the strategy and the limit (both are part of the key's name).
local count = 0
local kind, amount, win, wsec, ival, cost, need, rej, room = {}, {}, {}, {}, {}, {}, {}, {}, {}
-- For a refund: the instant the charge was made (seconds, nanoseconds), or nil.
local charged_s, charged_n = {}, {}
local key, key2, owner, together, ok = {}, {}, {}, {}, {}
-- The states, at owners' indices: up to three numbers (their meaning is the strategy's),
-- whether to save, the stored start a fixed window keeps while its window is unchanged, and
-- the key's expiry as stored with the state (see `lifetime`).
local A, B, C, dirty, kept_s, kept_n, X, first = {}, {}, {}, {}, {}, {}, {}, {}
-- The reply, reused: Redis reads it before the next call, up to its first nil.
local out = {}

-- An instant (seconds and nanoseconds since the epoch) as ns relative to now.
local function rel(s, n)
  return (s - now_s) * E + (n - now_n)
end

-- A time relative to now as an instant (seconds, nanoseconds), clamped at the epoch.
local function abs(r)
  if r == 0 then
    return now_s, now_n
  end
  local q, n = divmod(r, E)
  local s = now_s + q
  n = n + now_n
  if n >= E then
    s = s + 1
    n = n - E
  end
  if s < 0 then
    return 0, 0
  end
  return s, n
end

-- The TTL of a state that becomes idle `idle` ns from now.
local function ttl(idle)
  return ceil(idle / 1000000) + grace
end

-- The TTL to give a key whose state becomes idle `idle` ns from now (> 0), and the instant
-- (ms since the epoch) it will then expire, to be stored with the state as X[o]. A SET with a
-- TTL costs Redis about twice one that keeps the key's TTL, so a state in steady use keeps
-- the TTL it has while that still outlasts its idle instant (the TTL is then nil), and a new
-- one reaches `horizon` (at least `idle`, within the limit's window) to be kept for long.
local function lifetime(o, idle, horizon)
  local base = now_s * 1000 + floor(now_n / 1000000)
  local x = X[o]
  if x and x >= base + ttl(idle) then
    return nil, x
  end
  local ms = ttl(horizon)
  return ms, base + ms
end

-- SET with a TTL of `ms`, or keeping the key's TTL when `ms` is nil.
local function set(k, value, ms)
  if ms then
    call('SET', k, value, 'PX', ms)
  else
    call('SET', k, value, 'KEEPTTL')
  end
end

-- Each strategy is eight functions of an owner index `o` (its state and limit): load; room,
-- the largest charge that fits now (0 or less: none does); hit; refund (of the newest
-- charges) and refund_at (of the charge made at an instant: `at` relative to now, and its
-- seconds and nanoseconds); stats (remaining and reset, relative); retry (when `need` will
-- fit, relative); and save. They are held in tables by strategy code. A counter's room is
-- computed when it is loaded and again after each change, so testing a charge is one
-- comparison.
local LOAD, ROOM, HIT, REFUND, REFUND_AT, STATS, RETRY, SAVE = {}, {}, {}, {}, {}, {}, {}, {}
local head = {}
-- Each strategy's functions are defined on its first use: a script run (EVALSHA) pays only for
-- the strategies its batch uses; a function library keeps them from call to call.
local define = {}

-- Fixed window: A start, C count; the window opens at the first hit after the last one closed.
-- While the window stays the same, its stored start is kept (`kept_s`, `kept_n`) and saving
-- keeps the key's TTL, set when the window opened.
function define.f()
  function LOAD.f(o)
    local v = call('GET', key[o])
    A[o], C[o], kept_s[o] = -P53, 0, nil
    if v then
      local s, n, c = sunpack('<ddd', v)
      A[o], C[o], kept_s[o], kept_n[o] = rel(s, n), c, s, n
    end
  end
  -- The count of the window still open, 0 when none is.
  local function fixed_used(o)
    if C[o] > 0 and -A[o] < win[o] then
      return C[o]
    end
    return 0
  end
  function ROOM.f(o)
    return amount[o] - fixed_used(o)
  end
  function HIT.f(o, n)
    local used = fixed_used(o)
    if used == 0 then
      A[o], kept_s[o] = 0, nil
    end
    C[o] = used + n
  end
  function REFUND.f(o, n)
    if fixed_used(o) > 0 then
      C[o] = max(0, C[o] - n)
    end
  end
  -- Only into the window the charge went to, while it is open.
  function REFUND_AT.f(o, n, at)
    if fixed_used(o) > 0 and at >= A[o] and at - A[o] < win[o] then
      C[o] = max(0, C[o] - n)
    end
  end
  function STATS.f(o)
    if C[o] > 0 and -A[o] < win[o] then
      return amount[o] - C[o], A[o] + win[o]
    end
    return amount[o], 0
  end
  function RETRY.f(o)
    return max(0, A[o] + win[o])
  end
  function SAVE.f(o)
    local idle = C[o] > 0 and A[o] + win[o] or 0
    if idle <= 0 then
      call('DEL', key[o])
    elseif kept_s[o] then
      call('SET', key[o], spack('<ddd', kept_s[o], kept_n[o], C[o]), 'KEEPTTL')
    else
      local s, n = abs(A[o])
      call('SET', key[o], spack('<ddd', s, n, C[o]), 'PX', ttl(idle))
    end
  end
end

-- GCRA: A tat; a missing or past tat behaves exactly as tat = now.
function define.g()
  function LOAD.g(o)
    local v = call('GET', key[o])
    A[o], X[o] = 0, nil
    if v then
      local s, n, x = sunpack('<ddd', v)
      A[o], X[o] = max(0, rel(s, n)), x
    end
  end
  -- n fits when n <= amount and tat + n * t <= amount * t.
  function ROOM.g(o)
    local t = ival[o]
    if t == 0 then
      return amount[o]
    end
    local room = divmod(amount[o] * t - A[o], t)
    return min(room, amount[o])
  end
  function HIT.g(o, n)
    A[o] = A[o] + n * ival[o]
  end
  function REFUND.g(o, n)
    A[o] = max(0, A[o] - n * ival[o])
  end
  -- The part of the charge's emission interval certainly still ahead: at + n * t - now.
  function REFUND_AT.g(o, n, at)
    local full = n * ival[o]
    local back = min(full, max(0, at + full))
    A[o] = max(0, A[o] - back)
  end
  function STATS.g(o)
    local t, tat = ival[o], A[o]
    if t == 0 then
      return 0, tat
    end
    local q, r = divmod(tat, t)
    if r > 0 then
      q = q + 1
    end
    return max(0, amount[o] - q), tat
  end
  function RETRY.g(o, n)
    return max(0, A[o] + n * ival[o] - amount[o] * ival[o])
  end
  function SAVE.g(o)
    local tat = A[o]
    if tat <= 0 then
      call('DEL', key[o])
      return
    end
    -- The tat is at most a window ahead (while the clock does not step back).
    local ms, x = lifetime(o, tat, max(tat, win[o]))
    local s, n = abs(tat)
    set(key[o], spack('<ddd', s, n, x), ms)
  end
end

-- Sliding window counter: A bucket, B previous, C current; buckets aligned to the epoch.
function define.s()
  function LOAD.s(o)
    local v = call('GET', key[o])
    A[o], B[o], C[o], X[o] = 0, 0, 0, nil
    if v then
      A[o], B[o], C[o], X[o] = sunpack('<dddd', v)
    end
  end
  -- The start of bucket b, relative. The window is a whole number of seconds, so the bucket of
  -- now is floor(now_s / window_s).
  local function bucket_start(b, o)
    return (b * wsec[o] - now_s) * E - now_n
  end
  -- The counter as seen now: bucket, previous, current, the instant the view holds from
  -- (relative: 0, or the start of a bucket ahead of now after a clock step back) and the end of
  -- the bucket.
  local function view(o)
    local b = divmod(now_s, wsec[o])
    local at = 0
    local p, c
    if b <= A[o] then
      if b < A[o] then
        b = A[o]
        at = bucket_start(b, o)
      end
      p, c = B[o], C[o]
    elseif b == A[o] + 1 then
      p, c = C[o], 0
    else
      p, c = 0, 0
    end
    return b, p, c, at, bucket_start(b + 1, o)
  end
  local function weighted(o, p, c, left)
    if p == 0 then
      return c
    end
    return (muldivmod(p, left, win[o])) + c
  end
  function ROOM.s(o)
    local _, p, c, at, fin = view(o)
    return amount[o] - weighted(o, p, c, fin - at)
  end
  function HIT.s(o, n)
    local b, p, c = view(o)
    A[o], B[o], C[o] = b, p, c + n
  end
  function REFUND.s(o, n)
    local b, p, c = view(o)
    local from_cur = min(c, n)
    A[o], B[o], C[o] = b, max(0, p - (n - from_cur)), c - from_cur
  end
  -- Only into the bucket the charge went to: the current one or the previous one.
  function REFUND_AT.s(o, n, _, at_s)
    local b, p, c = view(o)
    local charged = divmod(at_s, wsec[o])
    if charged == b then
      c = max(0, c - n)
    elseif charged + 1 == b then
      p = max(0, p - n)
    else
      return
    end
    A[o], B[o], C[o] = b, p, c
  end
  function STATS.s(o)
    local _, p, c, at, fin = view(o)
    local left = fin - at
    local remaining = max(0, amount[o] - weighted(o, p, c, left))
    local reset_in = nil
    if p > 0 then
      -- left mod (window / prev) == ((left * prev) mod window) / prev
      local _, m = muldivmod(left, p, win[o])
      reset_in = (divmod(m, p))
    end
    if c > 0 then
      reset_in = reset_in and min(reset_in, left) or left
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
    return bucket_end - min(max_left, W)
  end
  function RETRY.s(o, n)
    local _, p, c, from, fin = view(o)
    local W, L = win[o], amount[o]
    local at = nil
    if c + n <= L then
      at = earliest(p, L - (c + n), fin, W)
    end
    if at == nil then
      at = earliest(c, L - n, fin + W, W) or (fin + W)
    end
    if at <= from then
      return 0
    end
    return at
  end
  function SAVE.s(o)
    local idle = nil
    if C[o] > 0 then
      idle = bucket_start(A[o] + 2, o)
    elseif B[o] > 0 then
      idle = bucket_start(A[o] + 1, o)
    end
    if idle == nil or idle <= 0 then
      call('DEL', key[o])
      return
    end
    -- Idle at a bucket's end, a whole second: the expiry asked for is the same all through a
    -- bucket, so the key gets a new TTL once per bucket.
    local ms, x = lifetime(o, idle, idle)
    set(key[o], spack('<dddd', A[o], B[o], C[o], x), ms)
  end
end

-- Moving window: a list of entries (instant, cost), oldest first (key), and their total (key2,
-- held in A). Expired entries are dropped when the key is first touched (they count for
-- nothing at any later time; a test, which may run where writes are refused, skips them
-- instead: `first` is the index of the oldest live entry). The oldest live entry, as loaded,
-- is remembered (B its instant, C its cost; B false for an empty log, nil once the log
-- changed), and so is the newest after a hit (kept_s its instant): a rejected hit on a full
-- log reads the list once.
function define.m()
  local function entry(v)
    local s, n, c = sunpack('<ddd', v)
    return rel(s, n), c, s, n
  end
  function LOAD.m(o)
    local total = call('GET', key2[o])
    A[o], B[o], kept_s[o] = total and sunpack('<d', total) or 0, false, nil
    local i = 0
    while true do
      local v = call('LINDEX', key[o], i)
      if not v then
        break
      end
      local at, c = entry(v)
      -- An entry emptied by a refund counts for nothing, as an expired one.
      if c > 0 and -at < win[o] then
        B[o], C[o] = at, c
        break
      end
      A[o] = max(0, A[o] - c)
      if op == 't' then
        i = i + 1
      else
        call('LPOP', key[o])
        dirty[o] = true
      end
    end
    first[o] = i
  end
  function ROOM.m(o)
    return amount[o] - A[o]
  end
  function HIT.m(o, n)
    local v = call('LINDEX', key[o], -1)
    local at, c, s, ns
    if v then
      at, c, s, ns = entry(v)
    end
    if v and at >= 0 then
      -- The newest entry grows; it may be the oldest too.
      call('LSET', key[o], -1, spack('<ddd', s, ns, c + n))
      B[o] = nil
    else
      call('RPUSH', key[o], spack('<ddd', now_s, now_n, n))
      at = 0
      if B[o] == false then
        B[o], C[o] = 0, n
      end
    end
    A[o], kept_s[o] = A[o] + n, at
  end
  function REFUND.m(o, n)
    B[o], kept_s[o] = nil, nil
    while n > 0 do
      local v = call('LINDEX', key[o], -1)
      if not v then
        return
      end
      local at, c, s, ns = entry(v)
      if -at >= win[o] then
        return
      end
      local take = min(c, n)
      c = c - take
      n = n - take
      A[o] = max(0, A[o] - take)
      if c == 0 then
        call('RPOP', key[o])
      else
        call('LSET', key[o], -1, spack('<ddd', s, ns, c))
      end
    end
  end
  -- From the entry of the instant the charge was made, while it counts: nothing when there is
  -- none (a charge made while the clock stood behind the newest entry was merged into it).
  function REFUND_AT.m(o, n, _, at_s, at_n)
    local entries = call('LRANGE', key[o], first[o], -1)
    for i, v in ipairs(entries) do
      local at, c, s, ns = entry(v)
      if s == at_s and ns == at_n then
        if c == 0 or -at >= win[o] then
          return
        end
        local take = min(c, n)
        c = c - take
        A[o] = max(0, A[o] - take)
        B[o], kept_s[o] = nil, nil
        local index = first[o] + i - 1
        if c > 0 then
          call('LSET', key[o], index, spack('<ddd', s, ns, c))
        elseif i == #entries then
          call('RPOP', key[o])
        elseif i == 1 then
          call('LPOP', key[o])
        else
          -- Inside the log: left empty, dropped when it reaches the front.
          call('LSET', key[o], index, spack('<ddd', s, ns, 0))
        end
        return
      end
      if s > at_s or (s == at_s and ns > at_n) then
        return
      end
    end
  end

  -- The oldest entry's instant and cost, or nil for an empty log.
  local function oldest(o)
    if B[o] == nil then
      local v = call('LINDEX', key[o], first[o])
      if v then
        B[o], C[o] = entry(v)
      else
        B[o] = false
      end
    end
    if B[o] then
      return B[o], C[o]
    end
  end
  function STATS.m(o)
    local at = oldest(o)
    local reset = win[o]
    if at then
      reset = at + win[o]
    end
    return max(0, amount[o] - A[o]), reset
  end
  function RETRY.m(o, n)
    -- Walks the log from its oldest entry until enough has expired, reading it a page at a
    -- time: a full log usually needs only its first entries.
    local used = A[o]
    local at, c = oldest(o)
    if not at then
      return 0
    end
    used = max(0, used - c)
    local last = at + win[o]
    if used + n <= amount[o] then
      return max(0, last)
    end
    local from, page = first[o] + 1, 8
    while true do
      local entries = call('LRANGE', key[o], from, from + page - 1)
      for _, v in ipairs(entries) do
        local e_at, e_cost = entry(v)
        used = max(0, used - e_cost)
        last = e_at + win[o]
        if used + n <= amount[o] then
          return max(0, last)
        end
      end
      if #entries < page then
        return max(0, last)
      end
      from = from + page
      page = page * 4
    end
  end
  function SAVE.m(o)
    local idle = nil
    if kept_s[o] then
      idle = kept_s[o] + win[o]
    else
      local v = call('LINDEX', key[o], -1)
      if v then
        idle = entry(v) + win[o]
      end
    end
    if idle == nil or idle <= 0 then
      call('DEL', key[o], key2[o])
    else
      local ms = ttl(idle)
      call('PEXPIRE', key[o], ms)
      call('SET', key2[o], spack('<d', A[o]), 'PX', ms)
    end
  end
end

-- Whether counter o has room for n more (nothing to test for n = 0).
local function fits(o, n)
  return n == 0 or n <= head[o]
end

-- Charges n to counter o.
local function hit(o, n)
  local k = kind[o]
  HIT[k](o, n)
  head[o] = ROOM[k](o)
  dirty[o] = true
end

-- The server's TIME as read once for a call of several batches (nil otherwise).
local time_s, time_n

-- One batch: its keys start after KEYS[k0] and its `na` arguments after ARGV[a0]. The reply is
-- left in `out` (the first 3 + 5 * count values).
local function run(KEYS, ARGV, k0, a0, na)
  op = ARGV[a0 + 1]
  grace = tonumber(ARGV[a0 + 3])
  if ARGV[a0 + 2] ~= '' then
    now_s, now_n = instant(ARGV[a0 + 2])
  elseif time_s then
    now_s, now_n = time_s, time_n
  else
    local t = call('TIME')
    now_s = tonumber(t[1])
    now_n = tonumber(t[2]) * 1000
  end

  -- The charges, their owners, and the costs that meet on each counter.
  count = (na - 3) / 2
  local ki = k0 + 1
  for i = 1, count do
    local a, c = ARGV[a0 + 2 + 2 * i], ARGV[a0 + 3 + 2 * i]
    local L, Q = parsed[a] or limit(a), parsed[c] or costs(c)
    local k = KEYS[ki]
    kind[i], amount[i], win[i], wsec[i], ival[i] = L[1], L[2], L[3], L[4], L[5]
    if not LOAD[L[1]] then
      define[L[1]]()
    end
    cost[i], need[i], rej[i], charged_s[i], charged_n[i] = Q[1], Q[2], Q[3], Q[4], Q[5]
    room[i] = Q[2] > Q[1] and Q[2] or Q[1]
    key[i] = k
    ki = ki + 1
    if kind[i] == 'm' then
      key2[i] = KEYS[ki]
      ki = ki + 1
    end
    local o = i
    for j = 1, i - 1 do
      if key[j] == k then
        o = owner[j]
        break
      end
    end
    owner[i] = o
    if o == i then
      together[i] = cost[i]
      dirty[i] = false
      LOAD[kind[i]](i)
      head[i] = ROOM[kind[i]](i)
    else
      together[o] = together[o] + cost[i]
    end
  end

  local all = true
  for i = 1, count do
    local o = owner[i]
    local allowed = op == 'r' or (fits(o, room[i]) and fits(o, together[o]))
    ok[i] = allowed
    all = all and allowed
  end

  local reject = op == 'x' or (op == 'h' and not all)
  for i = 1, count do
    local o = owner[i]
    local k = kind[o]
    if op == 'h' and all and cost[i] > 0 then
      hit(o, cost[i])
    elseif op == 'r' then
      if charged_s[i] then
        local at = (charged_s[i] - now_s) * E + (charged_n[i] - now_n)
        REFUND_AT[k](o, cost[i], at, charged_s[i], charged_n[i])
      else
        REFUND[k](o, cost[i])
      end
      head[o] = ROOM[k](o)
      dirty[o] = true
    elseif reject and rej[i] > 0 and fits(o, rej[i]) then
      -- A rejected hit charges what its charges ask for on a rejection, where it fits.
      hit(o, rej[i])
    end
  end

  out[1], out[2], out[3] = all and 1 or 0, now_s, now_n
  local m = 3
  for i = 1, count do
    local o = owner[i]
    local k = kind[o]
    local remaining, reset = STATS[k](o)
    local retry = 0
    if not ok[i] then
      if room[i] > amount[o] then
        retry = -1
      elseif not fits(o, room[i]) then
        retry = RETRY[k](o, room[i])
      end
    end
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
    out[m + 1] = ok[i] and 1 or 0
    out[m + 2] = remaining
    out[m + 3] = now_s + q
    out[m + 4] = n
    out[m + 5] = retry
    m = m + 5
  end
  out[m + 1] = nil

  for o = 1, count do
    if owner[o] == o and dirty[o] then
      SAVE[kind[o]](o)
    end
  end
end

-- Several batches in one call (ARGV[1] 'M'): ARGV[2] their number n, then each one's key
-- count and argument count, then their arguments one batch after another (KEYS likewise).
-- They run one after another, exactly as n calls in that order would, and the reply holds
-- each one's reply in order; a batch that fails gives {'E', its error} in its place and the
-- others run on. The server's time is read once for all of them.
local function many(KEYS, ARGV)
  local n = tonumber(ARGV[2])
  local replies = {}
  local k0, a0 = 0, 2 + 2 * n
  local t = call('TIME')
  time_s, time_n = tonumber(t[1]), tonumber(t[2]) * 1000
  for j = 1, n do
    local nk, na = tonumber(ARGV[1 + 2 * j]), tonumber(ARGV[2 + 2 * j])
    local done, err = pcall(run, KEYS, ARGV, k0, a0, na)
    if done then
      local reply = {}
      for m = 1, 3 + 5 * count do
        reply[m] = out[m]
      end
      replies[j] = reply
    elseif type(err) == 'table' and err.err then
      -- Not an error reply: a client reading the whole reply would fail all of it.
      replies[j] = { 'E', err.err }
    else
      replies[j] = { 'E', 'ERR ' .. tostring(err) }
    end
    k0, a0 = k0 + nk, a0 + na
  end
  time_s = nil
  return replies
end

-- The whole call. Defined once, whether loaded as a function library (FCALL) or run as a
-- script (EVALSHA); the entry point that calls it is added by the client.
local function batch(KEYS, ARGV)
  if not call then
    bind()
  end
  if ARGV[1] == 'M' then
    return many(KEYS, ARGV)
  end
  run(KEYS, ARGV, 0, 0, #ARGV)
  return out
end
