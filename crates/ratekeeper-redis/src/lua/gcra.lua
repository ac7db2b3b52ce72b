-- Part of the batch script (see common.lua), joined after the parts before it by
-- `script.rs`. The Lua twin of `ratekeeper_core::Gcra`; the differential tests in
-- ratekeeper-redis/tests/semantics.rs keep the two equal.

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
