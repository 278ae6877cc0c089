-- One wrk script for every peer (bench/peers/load.py sets the environment):
--   WRK_MODE     get (a random id of WRK_IDS per request), list (WRK_PATH as is), post (WRK_BODIES in turn)
--   WRK_PATH     the path, or the prefix an id is appended to
--   WRK_HEADERS  a file of "Name: value" lines (authentication, application ids)
-- done() prints one "@wrk {json}" line with the counts load.py reads.
local mode = os.getenv("WRK_MODE")
local path = os.getenv("WRK_PATH")
local ids, bodies, n = {}, {}, 0

local function lines(name)
  local out = {}
  for text in io.lines(name) do
    if text ~= "" then out[#out + 1] = text end
  end
  return out
end

function init(args)
  for _, text in ipairs(lines(os.getenv("WRK_HEADERS"))) do
    local key, value = text:match("^([^:]+):%s*(.*)$")
    wrk.headers[key] = value
  end
  if mode == "get" then
    ids = lines(os.getenv("WRK_IDS"))
  elseif mode == "post" then
    bodies = lines(os.getenv("WRK_BODIES"))
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
  end
  math.randomseed(os.time())
end

function request()
  if mode == "get" then
    return wrk.format(nil, path .. ids[math.random(#ids)])
  elseif mode == "post" then
    n = n + 1
    return wrk.format(nil, path, nil, bodies[(n % #bodies) + 1])
  end
  return wrk.format(nil, path)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '@wrk {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, "status": %d, ' ..
    '"timeout": %d, "latency_mean_us": %.1f, "latency_p50_us": %d, "latency_p99_us": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(99)))
end
