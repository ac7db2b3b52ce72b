-- ratekeeper-redis: one atomic batch of charges, any mix of the four strategies.
--
-- The script is six files joined in this order by `script.rs`: this one (the calling
-- convention, arithmetic, parsing, the shared state), one per strategy (fixed_window.lua,
-- gcra.lua, sliding_window.lua, moving_window.lua) and batch.lua. Together they define
-- `batch(KEYS, ARGV)`. The client appends the entry point: a
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
