-- Part of the batch script (see common.lua), joined last by `script.rs`: a call's charges
-- tested, charged or refunded through the strategies' functions, and the entry points.

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

  -- Renewals: a hit's charge that names an earlier one gives it back first (also where
  -- another slot rejected the hit: the refund stands).
  if op == 'h' or op == 'x' then
    for i = 1, count do
      if charged_s[i] then
        local o = owner[i]
        local k = kind[o]
        local at = (charged_s[i] - now_s) * E + (charged_n[i] - now_n)
        REFUND_AT[k](o, cost[i], at, charged_s[i], charged_n[i])
        head[o] = ROOM[k](o)
        dirty[o] = true
      end
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
