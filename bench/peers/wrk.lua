-- One wrk script for every peer (bench/peers/load.py sets the environment):
--   WRK_MODE     get (a random id of WRK_IDS per request), list (WRK_PATH as is), post (WRK_BODIES in turn)
--   WRK_PATH     the path, or the prefix an id is appended to
--   WRK_HEADERS  a file of "Name: value" lines (authentication, application ids)
--   WRK_COUNT    optional: stop after that many answers, timed here from the first request to the
--                last answer (a timed run counts only the answers that arrive within its time, so the
--                requests still in flight at the end are lost; a counted run has no such edge)
-- Either way one "@wrk {json}" line reports the counts load.py reads.
local mode = os.getenv("WRK_MODE")
local path = os.getenv("WRK_PATH")
local count = tonumber(os.getenv("WRK_COUNT") or "0")
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

-- wrk's own duration is the -d it was given, so a counted run times itself (LuaJIT's ffi) and ends
-- wrk once the last answer is in, printing what done() would have.
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clock, bench_timespec *out);
]]
local function now()
  local t = ffi.new("bench_timespec")
  ffi.C.clock_gettime(1, t) -- CLOCK_MONOTONIC
  return tonumber(t.tv_sec) + tonumber(t.tv_nsec) / 1e9
end
local first = nil

function request()
  if count > 0 and not first then first = now() end
  if mode == "get" then
    return wrk.format(nil, path .. ids[math.random(#ids)])
  elseif mode == "post" then
    n = n + 1
    return wrk.format(nil, path, nil, bodies[(n % #bodies) + 1])
  end
  return wrk.format(nil, path)
end

if count > 0 then
  local answers, failed = 0, 0
  function response(status, headers, body)
    answers = answers + 1
    if status >= 400 then failed = failed + 1 end
    if answers == count then
      io.write(string.format(
        '@wrk {"requests": %d, "duration_us": %d, "connect": 0, "read": 0, "write": 0, "status": %d, "timeout": 0}\n',
        answers, (now() - first) * 1e6, failed))
      io.flush()
      os.exit(0)
    end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '@wrk {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout))
end
