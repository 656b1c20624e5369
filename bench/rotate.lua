-- wrk script for bench/run.sh: GET /2/tweets/:id rotating over the ids in $BENCH_IDS_FILE
-- (one per line), with `Authorization: Bearer $BENCH_KEY` on every request (nginx ignores it;
-- it is sent to both servers so the requests are byte-for-byte the same).
-- Each thread starts at a different offset. `done` prints one machine-readable RESULT line.

local ids = {}
local index = 1

local function load_ids()
  local path = os.getenv("BENCH_IDS_FILE")
  assert(path, "BENCH_IDS_FILE is not set")
  local list = {}
  for line in io.lines(path) do
    if line ~= "" then list[#list + 1] = line end
  end
  assert(#list > 0, "no ids in " .. path)
  return list
end

local thread_count = 0
function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_number", thread_count)
end

function init(args)
  ids = load_ids()
  local query = os.getenv("BENCH_QUERY") or ""
  for i, id in ipairs(ids) do
    ids[i] = "/2/tweets/" .. id .. query
  end
  index = ((thread_number or 1) - 1) * 7919 % #ids + 1
  local key = os.getenv("BENCH_KEY")
  if key and key ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. key
  end
end

function request()
  local path = ids[index]
  index = index % #ids + 1
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
