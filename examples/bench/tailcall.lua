-- wrk's side of `--tailcall-wrk`: issue 18's query, a different member each request
-- (each wrk thread from its own offset), every answer checked; the benchmark writes
-- QUERY, USERS and KEY in and reads the lines `done()` prints.
local threads = {}

function setup(thread)
  thread:set("offset", #threads * 500)
  table.insert(threads, thread)
end

function init(args)
  n = 0
  errors = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer KEY"
end

function request()
  n = n + 1
  local id = ((n + offset) % USERS) + 1
  return wrk.format(nil, nil, nil, '{"query":"QUERY","variables":{"id":"' .. id .. '"}}')
end

function response(status, headers, body)
  if status ~= 200 or not body:find('^{"data"') or body:find('"errors":') then
    errors = errors + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("errors")
  end
  io.write(string.format("bench-requests %d\n", summary.requests))
  io.write(string.format("bench-duration-us %d\n", summary.duration))
  io.write(string.format("bench-errors %d\n", bad + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
  io.write(string.format("bench-p50-us %d\n", latency:percentile(50)))
  io.write(string.format("bench-p99-us %d\n", latency:percentile(99)))
end
