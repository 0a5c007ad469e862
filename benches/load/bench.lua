-- wrk script for the load harness: POSTs pre-signed Svix webhooks, each with a distinct id.
--
-- Usage: wrk ... -s bench.lua URL -- DATA_DIR THREADS
-- DATA_DIR is what gen.py wrote (body.bin, reqs.txt, ts.txt). Thread k sends entries
-- k+1, k+1+THREADS, ... so no two threads share an id; a thread that runs out of
-- entries wraps around and counts it, and run.sh treats any wrap as a failed point
-- (a repeated id would be answered as a duplicate without being forwarded).
-- BENCH_ROUTES=K (the queue measurement) spreads requests over /webhooks/q0 .. q{K-1}, K routes
-- of one signing secret (a Svix signature does not cover the path); unset, all go to /webhooks/svix.

local threads = {}
local routes = tonumber(os.getenv("BENCH_ROUTES") or "0")
local next_tid = 0

function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
  table.insert(threads, thread)
end

function init(args)
  local dir, nthreads = args[1], tonumber(args[2])
  local f = assert(io.open(dir .. "/body.bin", "rb"))
  body = f:read("*a")
  f:close()
  f = assert(io.open(dir .. "/ts.txt", "r"))
  local ts = f:read("*l")
  f:close()
  ids, sigs = {}, {}
  local i = 0
  for line in io.lines(dir .. "/reqs.txt") do
    -- Keep only this thread's share: every nthreads-th line from its own offset.
    if i % nthreads == tid then
      local sp = line:find(" ", 1, true)
      table.insert(ids, line:sub(1, sp - 1))
      table.insert(sigs, line:sub(sp + 1))
    end
    i = i + 1
  end
  n, idx, wrapped = #ids, 1, 0
  headers = {
    ["Content-Type"] = "application/json",
    ["svix-timestamp"] = ts,
  }
  -- BENCH_CLOSE=1: a new connection for every request, as senders that do not
  -- keep connections alive deliver (the server closes after each answer).
  if os.getenv("BENCH_CLOSE") == "1" then
    headers["Connection"] = "close"
  end
end

function request()
  if idx > n then
    idx = 1
    wrapped = wrapped + 1
  end
  headers["svix-id"] = ids[idx]
  headers["svix-signature"] = sigs[idx]
  local path = "/webhooks/svix"
  if routes > 0 then
    path = "/webhooks/q" .. (idx % routes)
  end
  idx = idx + 1
  return wrk.format("POST", path, headers, body)
end

function done(summary, latency, requests)
  local w = 0
  for _, t in ipairs(threads) do
    w = w + (t:get("wrapped") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,'
      .. '"max_us":%d,"status_errors":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,'
      .. '"timeouts":%d,"ids_wrapped":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.status, e.connect, e.read, e.write, e.timeout, w))
end
