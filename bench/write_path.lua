-- wrk script of bench/write_path.py. Environment:
--   WP_MODE     get (WP_PATH .. a random id of WP_IDS), list (WP_PATH as is), post (a new body each request)
--   WP_PATH     the path, or the prefix an id is appended to
--   WP_HEADERS  a file of "Name: value" lines
--   WP_BODY     post: a JSON body with the placeholders %d (a counter) and %s (an ISO date)
--   WP_COUNT    post: stop after that many answers (each target then ends with the same number of
--               documents), timed from the first request to the last answer
-- Prints one "@wrk {json}" line.
local mode = os.getenv("WP_MODE")
local path = os.getenv("WP_PATH")
local count = tonumber(os.getenv("WP_COUNT") or "0")
local template = os.getenv("WP_BODY") or ""
local offset = tonumber(os.getenv("WP_OFFSET") or "0")
local ids, n = {}, 0

local function lines(name)
  local out = {}
  for text in io.lines(name) do
    if text ~= "" then out[#out + 1] = text end
  end
  return out
end

function init(args)
  for _, text in ipairs(lines(os.getenv("WP_HEADERS"))) do
    local key, value = text:match("^([^:]+):%s*(.*)$")
    wrk.headers[key] = value
  end
  if mode == "get" then
    ids = lines(os.getenv("WP_IDS"))
  elseif mode == "post" then
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
  end
  math.randomseed(os.time())
end

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } wp_timespec;
  int clock_gettime(int clock, wp_timespec *out);
]]
local function now()
  local t = ffi.new("wp_timespec")
  ffi.C.clock_gettime(1, t) -- CLOCK_MONOTONIC
  return tonumber(t.tv_sec) + tonumber(t.tv_nsec) / 1e9
end
local first = nil

function request()
  if mode == "get" then
    return wrk.format(nil, path .. ids[math.random(#ids)])
  elseif mode == "post" then
    first = first or now()
    n = n + 1
    local i = offset + n
    local day = string.format("2026-01-%02dT%02d:%02d:%02d.000Z", 1 + i % 28, i % 24, i % 60, (i * 7) % 60)
    return wrk.format(nil, path, nil, template:gsub("%%d", tostring(i)):gsub("%%s", day))
  end
  return wrk.format(nil, path)
end

local answers, failed = 0, 0
if mode == "post" and count > 0 then
  function response(status, headers, body)
    answers = answers + 1
    if status >= 400 then failed = failed + 1 end
    if answers == count then
      io.write(string.format('@wrk {"requests": %d, "seconds": %.6f, "errors": %d}\n',
        answers, now() - first, failed))
      io.flush()
      os.exit(0)
    end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('@wrk {"requests": %d, "seconds": %.6f, "errors": %d}\n', summary.requests,
    summary.duration / 1e6, e.connect + e.read + e.write + e.status + e.timeout))
end
