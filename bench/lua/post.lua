-- POST a JSON body over and over. Arguments (after --):
--   body_file  the body; every "@MSGID@" becomes a fresh id per request
--   auth       the Authorization header value, or "-" for none
--   expect     a substring a good answer contains (counted as ok), or "-" to count every 2xx
--   addrs      "host:port,host:port" to spread the threads over several servers, or "-"
local threads = {}
local counter = 0
local prefix, suffix, headers, expect

function setup(thread)
  local i = #threads + 1
  thread:set("tid", i)
  local spread = wrk.bench_addrs
  if spread then
    thread.addr = spread[((i - 1) % #spread) + 1]
  end
  table.insert(threads, thread)
end

local function split_addrs(text)
  local out = {}
  for host, port in string.gmatch(text, "([^,:]+):(%d+)") do
    table.insert(out, wrk.lookup(host, port)[1])
  end
  return out
end

-- the main state reads the arguments too (wrk passes them only to init), from the environment
do
  local addrs = os.getenv("BENCH_ADDRS")
  if addrs and addrs ~= "" and addrs ~= "-" then
    wrk.bench_addrs = split_addrs(addrs)
  end
end

function init(args)
  local f = assert(io.open(args[1], "rb"))
  local body = f:read("*a")
  f:close()
  local s, e = string.find(body, "@MSGID@", 1, true)
  if s then
    prefix, suffix = string.sub(body, 1, s - 1), string.sub(body, e + 1)
  else
    prefix, suffix = body, nil
  end
  headers = { ["Content-Type"] = "application/json" }
  if args[2] ~= "-" then
    headers["Authorization"] = args[2]
  end
  expect = args[3] ~= "-" and args[3] or nil
  ok, bad = 0, 0
end

function request()
  local body = prefix
  if suffix then
    counter = counter + 1
    body = prefix .. "b" .. tid .. "-" .. counter .. suffix
  end
  return wrk.format("POST", nil, headers, body)
end

function response(status, hdrs, body)
  if status >= 200 and status < 300 and (expect == nil or string.find(body, expect, 1, true)) then
    ok = ok + 1
  else
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local good, wrong = 0, 0
  for _, t in ipairs(threads) do
    good = good + (t:get("ok") or 0)
    wrong = wrong + (t:get("bad") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"ok":%d,"bad":%d,"p50_us":%d,"p99_us":%d,"mean_us":%.1f,' ..
    '"max_us":%d,"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d}\n',
    summary.requests, summary.duration, good, wrong, latency:percentile(50), latency:percentile(99),
    latency.mean, latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
