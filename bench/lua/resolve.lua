-- Resolve held tasks, each once, then stop. Arguments (after --):
--   ids_file  one task id per line; thread i of n takes lines i, i+n, i+2n, ...; a thread that has all its
--             answers writes ids_file.done.<i> and stops (the harness then ends wrk with SIGINT)
--   auth      the Authorization header value
--   body      the resolve body
-- The environment's BENCH_ADDRS ("host:port,...") spreads the threads over several servers.
-- A connection with no id left sends a GET /healthz filler once a second (delay()) until wrk is stopped;
-- fillers are counted (extra) and left out of the latency figures, which the script takes itself: from
-- request() to response() of each resolve, matched by the message_id of its answer (wrk's own histogram,
-- which would include the fillers, is reported as wrk_p50_us/wrk_p99_us).
local threads = {}
local mine, next_id, answered, first_call
local headers, body

local has_ffi, ffi = pcall(require, "ffi")
local now_us
if has_ffi then
  ffi.cdef([[
    typedef struct { long tv_sec; long tv_nsec; } bench_timespec_t;
    int clock_gettime(int clk_id, bench_timespec_t *tp);
  ]])
  local ts = ffi.new("bench_timespec_t")
  now_us = function()
    ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
  end
end

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
  thread:set("first_thread", #threads == 1)
  local spread = wrk.bench_addrs
  if spread then
    thread.addr = spread[((#threads - 1) % #spread) + 1]
  end
end

do
  local addrs = os.getenv("BENCH_ADDRS")
  if addrs and addrs ~= "" and addrs ~= "-" then
    local out = {}
    for host, port in string.gmatch(addrs, "([^,:]+):(%d+)") do
      table.insert(out, wrk.lookup(host, port)[1])
    end
    wrk.bench_addrs = out
  end
end

function init(args)
  local n = tonumber(os.getenv("BENCH_THREADS") or "1")
  mine = {}
  local line_no = 0
  for line in io.lines(args[1]) do
    if line ~= "" then
      if line_no % n == tid - 1 then
        table.insert(mine, line)
      end
      line_no = line_no + 1
    end
  end
  headers = { ["Content-Type"] = "application/json", ["Authorization"] = args[2] }
  body = args[3]
  done_file = args[1] .. ".done." .. tid
  next_id, answered = 1, 0
  if #mine == 0 then
    io.open(done_file, "w"):close()
  end
  -- wrk calls request() once on the first thread to inspect it before the run; that call must not use an id
  first_call = first_thread
  ok, conflict, other, extra, untimed = 0, 0, 0, 0, 0
  lat = {}  -- microseconds per timed resolve (global: done() reads it with thread:get)
  sent = {}
end

-- a connection whose thread has no id left waits a second before each filler
function delay()
  if mine[next_id] == nil then
    return 1000
  end
  return 0
end

function request()
  if first_call then
    first_call = false
    return wrk.format("GET", "/healthz")
  end
  local id = mine[next_id]
  if id == nil then
    extra = extra + 1
    return wrk.format("GET", "/healthz")
  end
  next_id = next_id + 1
  if now_us then
    sent[id] = now_us()
  end
  return wrk.format("POST", "/messages/" .. id .. "/resolve", headers, body)
end

function response(status, hdrs, resp_body)
  if answered >= #mine or resp_body == '{"status":"ok"}' then
    return  -- a filler request (/healthz), not a resolve
  end
  answered = answered + 1
  local id = now_us and string.match(resp_body, '"message_id"%s*:%s*"([^"]+)"')
  if id and sent[id] then
    table.insert(lat, now_us() - sent[id])
    sent[id] = nil
  else
    untimed = untimed + 1
  end
  if status == 200 then
    ok = ok + 1
  elseif status == 409 then
    conflict = conflict + 1
  else
    other = other + 1
  end
  if answered >= #mine then
    local f = io.open(done_file, "w")
    f:write("done\n")
    f:close()
    wrk.thread:stop()
  end
end

local function percentile(sorted, p)
  local i = math.max(1, math.ceil(#sorted * p / 100))
  return sorted[i]
end

function done(summary, latency, requests)
  local good, conf, oth, ext, unt = 0, 0, 0, 0, 0
  local all = {}
  for _, t in ipairs(threads) do
    good = good + (t:get("ok") or 0)
    conf = conf + (t:get("conflict") or 0)
    oth = oth + (t:get("other") or 0)
    ext = ext + (t:get("extra") or 0)
    unt = unt + (t:get("untimed") or 0)
    for _, v in ipairs(t:get("lat") or {}) do
      table.insert(all, v)
    end
  end
  -- the resolves' own latency when every answered resolve was timed; else wrk's (fillers included)
  local p50, p99, mean, max, from = latency:percentile(50), latency:percentile(99), latency.mean, latency.max, "wrk"
  if #all > 0 and unt == 0 then
    table.sort(all)
    local sum = 0
    for _, v in ipairs(all) do
      sum = sum + v
    end
    p50, p99, from = math.floor(percentile(all, 50)), math.floor(percentile(all, 99)), "script"
    mean, max = sum / #all, math.floor(all[#all])
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"ok":%d,"conflict":%d,"other":%d,"extra":%d,"untimed":%d,' ..
    '"latency_from":"%s","p50_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d,"wrk_p50_us":%d,"wrk_p99_us":%d,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d}\n',
    summary.requests, summary.duration, good, conf, oth, ext, unt, from, p50, p99, mean, max,
    latency:percentile(50), latency:percentile(99), e.connect, e.read, e.write, e.status, e.timeout))
end
