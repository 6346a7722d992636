-- wrk script: POST the home-timeline document with a bearer token, cycling through the
-- tokens in BENCH_TOKENS (comma-separated); the JSON body comes from BENCH_BODY.
-- At the end prints one line: BENCH_RESULT {json} with requests/s and latency percentiles.

local requests = {}
local next_request = 1

function init(args)
  local body = os.getenv("BENCH_BODY")
  local tokens = os.getenv("BENCH_TOKENS")
  if body == nil or tokens == nil then
    error("BENCH_BODY and BENCH_TOKENS must be set")
  end
  for token in string.gmatch(tokens, "[^,]+") do
    local headers = {
      ["Content-Type"] = "application/json",
      ["Authorization"] = "Bearer " .. token,
    }
    table.insert(requests, wrk.format("POST", "/graphql", headers, body))
  end
  -- Threads start at different tokens.
  next_request = (math.random(#requests) - 1) % #requests + 1
end

function request()
  local r = requests[next_request]
  next_request = next_request % #requests + 1
  return r
end

function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "seconds": %.6f, "rps": %.2f, "p50_ms": %.3f, '
      .. '"p90_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f, "errors": %d, "non_2xx": %d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, errors, summary.errors.status))
end
