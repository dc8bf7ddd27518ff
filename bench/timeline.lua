-- wrk script: per-second counts of 2xx and other answers, printed when wrk stops.
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ok = {}; bad = {} end
function response(status, headers, body)
  local t = os.time()
  if status >= 200 and status < 300 then ok[t] = (ok[t] or 0) + 1
  else bad[t] = (bad[t] or 0) + 1 end
end
function done(summary, latency, requests)
  local okall, badall = {}, {}
  for _, thread in ipairs(threads) do
    for t, n in pairs(thread:get("ok")) do okall[t] = (okall[t] or 0) + n end
    for t, n in pairs(thread:get("bad")) do badall[t] = (badall[t] or 0) + n end
  end
  local seen = {}
  for t in pairs(okall) do seen[t] = true end
  for t in pairs(badall) do seen[t] = true end
  for t in pairs(seen) do
    io.write(string.format("TIMELINE %d %d %d\n", t, okall[t] or 0, badall[t] or 0))
  end
end
