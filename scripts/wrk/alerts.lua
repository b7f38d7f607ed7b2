-- wrk script for riposte's intake: unique Falco alerts (a fresh uuid per
-- alert across threads and runs), POSTed to /v1/alerts with the bearer
-- token from RIPOSTE_TOKEN. BATCH=N (default 1) sends N alerts per request
-- as NDJSON. Alerts spread over 64 containers, the example playbooks'
-- shell rule, as scripts/bench-intake.sh measures.
local batch = tonumber(os.getenv("BATCH") or "1")
local token = os.getenv("RIPOSTE_TOKEN") or ""
local run = os.getenv("RUN") or tostring(os.time())
local threads = 0
local counter = 0
local tid = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local fmt = '{"uuid":"wrk-%s-%d-%d","time":"2026-11-24T10:00:00.%09dZ","rule":"Terminal shell in container",' ..
  '"priority":"Notice","source":"syscall","hostname":"bench","tags":["container","shell"],' ..
  '"output":"A shell was spawned in a container with an attached terminal (user=root shell=sh)",' ..
  '"output_fields":{"container.id":"%012d","container.name":"bench-%d","container.image.repository":"staging/bench",' ..
  '"proc.cmdline":"sh -i","user.name":"root"}}'

local headers = {["Authorization"] = "Bearer " .. token,
  ["Content-Type"] = batch > 1 and "application/x-ndjson" or "application/json"}

function request()
  local parts = {}
  for i = 1, batch do
    counter = counter + 1
    parts[i] = string.format(fmt, run, tid, counter, counter % 1000000000, counter % 64, counter % 64)
  end
  return wrk.format("POST", "/v1/alerts", headers, table.concat(parts, "\n"))
end
