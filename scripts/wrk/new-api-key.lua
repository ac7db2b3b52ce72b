-- wrk: every request carries a new X-API-Key, so every request is a new client and takes the
-- limiter's allowed path (two default limits and a meta-limit gate in the seed tour).
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", nil, { ["X-API-Key"] = "bench-" .. counter .. "-" .. math.random(1e9) })
end
