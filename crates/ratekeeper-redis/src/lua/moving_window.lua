-- Part of the batch script (see common.lua), joined after the parts before it by
-- `script.rs`. The Lua twin of `ratekeeper_core::BoundedMovingWindow`; the differential tests in
-- ratekeeper-redis/tests/semantics.rs keep the two equal.

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
  -- From the entry of the instant the charge was made, while it counts; nothing once its
  -- window has passed. With no entry of that instant (a charge made while the clock stood
  -- behind the newest entry was merged into it), from the first newer entry that counts.
  function REFUND_AT.m(o, n, charged, at_s, at_n)
    if -charged >= win[o] then
      return
    end
    local entries = call('LRANGE', key[o], first[o], -1)
    for i, v in ipairs(entries) do
      local at, c, s, ns = entry(v)
      local later = s > at_s or (s == at_s and ns > at_n)
      if (s == at_s and ns == at_n) or (later and c > 0) then
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
          -- Entries emptied behind it go too, as the core skips them: the oldest counts.
          for j = 2, #entries - 1 do
            local _, cj = entry(entries[j])
            if cj > 0 then
              break
            end
            call('LPOP', key[o])
          end
        else
          -- Inside the log: left empty, dropped when it reaches the front.
          call('LSET', key[o], index, spack('<ddd', s, ns, 0))
        end
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
