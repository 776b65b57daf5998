-- conn_rate: a per-app limit on new connections. Settings ([script.conn_rate]):
--   rate  = 20   new connections a second an app may open (per app, all its cells together)
--   burst = 40   how many it may open at once
--   apps  = ""   comma-separated apps to limit (empty: every app)
-- A token bucket per app: each connection takes a token; tokens come back at `rate` a second
-- up to `burst`. A connection with no token left is rejected (the app sees "connection
-- refused" at once rather than a hang), and counted.
local RATE = config.rate or 20
local BURST = config.burst or 40
local APPS = nil
if config.apps and config.apps ~= "" then
  APPS = {}
  for a in string.gmatch(config.apps, "[^,%s]+") do APPS[a] = true end
end

local SYN, ACK = 0x02, 0x10
local buckets = {} -- app -> {tokens, at}

function on_packet(pkt)
  if pkt.direction ~= "out" then return end
  if pkt.proto == TCP and pkt.tcp_flags & (SYN | ACK) ~= SYN then return end
  local app = pkt.app
  if APPS and not APPS[app] then return end
  local t = now()
  local b = buckets[app]
  if not b then b = {tokens = BURST, at = t}; buckets[app] = b end
  b.tokens = math.min(BURST, b.tokens + (t - b.at) * RATE)
  b.at = t
  if b.tokens >= 1 then
    b.tokens = b.tokens - 1
    return
  end
  count("limited:" .. app)
  return "reject"
end
