-- Part of the batch script (see common.lua), joined after the parts before it by
-- `script.rs`. The Lua twin of `ratekeeper_core::SlidingWindow`; the differential tests in
-- ratekeeper-redis/tests/semantics.rs keep the two equal.

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
