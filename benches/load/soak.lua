-- wrk script for the soak (run.sh --soak): bench.lua's pre-signed requests, paced so the
-- load is steady: each connection waits SOAK_DELAY_MS after every response before sending
-- its next request (wrk's delay() hook), so the rate stays near connections x 1000 / (delay
-- + latency) instead of as fast as hookgate answers.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "bench.lua")

local pause = tonumber(os.getenv("SOAK_DELAY_MS") or "0")

function delay()
  return pause
end
