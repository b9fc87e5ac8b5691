-- wrk script: every request revalidates with If-None-Match = $ETAG (the validator the app gave us),
-- and the status codes are counted per thread and printed by done() as one JSON line, so the runner
-- can count 304s, 200s and 5xx exactly (wrk itself only reports "Non-2xx or 3xx responses").
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  local etag = os.getenv("ETAG")
  if etag ~= nil and etag ~= "" then
    wrk.headers["If-None-Match"] = etag
  end
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(total) do
    table.insert(parts, string.format('"%d": %d', status, count))
  end
  io.write(string.format(
    'WRK_RESULT {"statuses": {%s}, "requests": %d, "duration_us": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"latency_p50_us": %d, "latency_p99_us": %d}\n',
    table.concat(parts, ", "), summary.requests, summary.duration,
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
