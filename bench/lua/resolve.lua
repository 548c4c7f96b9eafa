-- Resolve held tasks, each once, then stop. Arguments (after --):
--   ids_file  one task id per line; thread i of n takes lines i, i+n, i+2n, ...; a thread that has all its
--             answers writes ids_file.done.<i> and stops (the harness then ends wrk with SIGINT)
--   auth      the Authorization header value
--   body      the resolve body
-- The environment's BENCH_ADDRS ("host:port,...") spreads the threads over several servers.
local threads = {}
local mine, next_id, answered, first_call
local headers, body

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
  ok, conflict, other, extra = 0, 0, 0, 0
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
  return wrk.format("POST", "/messages/" .. id .. "/resolve", headers, body)
end

function response(status, hdrs, resp_body)
  if answered >= #mine or resp_body == '{"status":"ok"}' then
    return  -- a filler request (/healthz), not a resolve
  end
  answered = answered + 1
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

function done(summary, latency, requests)
  local good, conf, oth, ext = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    good = good + (t:get("ok") or 0)
    conf = conf + (t:get("conflict") or 0)
    oth = oth + (t:get("other") or 0)
    ext = ext + (t:get("extra") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"ok":%d,"conflict":%d,"other":%d,"extra":%d,"p50_us":%d,' ..
    '"p99_us":%d,"mean_us":%.1f,"max_us":%d,"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,' ..
    '"err_timeout":%d}\n',
    summary.requests, summary.duration, good, conf, oth, ext, latency:percentile(50), latency:percentile(99),
    latency.mean, latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
