-- wrk script for bench/run.sh, bench/search.sh and bench/terms.sh: GET rotating over the request paths (path
-- plus query string, one per line) in $BENCH_PATHS_FILE, with `Authorization: Bearer $BENCH_KEY`
-- on every request when it is set (nginx ignores it; it is sent to every server so the requests
-- are byte-for-byte the same). Each thread starts at a different offset. `done` prints one
-- machine-readable RESULT line.

local paths = {}
local index = 1

local thread_count = 0
function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_number", thread_count)
end

function init(args)
  local file = os.getenv("BENCH_PATHS_FILE")
  assert(file, "BENCH_PATHS_FILE is not set")
  for line in io.lines(file) do
    if line ~= "" then paths[#paths + 1] = line end
  end
  assert(#paths > 0, "no paths in " .. file)
  index = ((thread_number or 1) - 1) * 7919 % #paths + 1
  local key = os.getenv("BENCH_KEY")
  if key and key ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. key
  end
end

function request()
  local path = paths[index]
  index = index % #paths + 1
  return wrk.format("GET", path)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
    "bytes=%d non2xx=%d connect_err=%d read_err=%d write_err=%d timeouts=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    summary.bytes, e.status, e.connect, e.read, e.write, e.timeout))
end
