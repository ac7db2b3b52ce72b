-- Part of the batch script (see common.lua), joined after the parts before it by
-- `script.rs`. The Lua twin of `ratekeeper_core::FixedWindow`; the differential tests in
-- ratekeeper-redis/tests/semantics.rs keep the two equal.

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
