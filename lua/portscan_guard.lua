-- portscan_guard: stops a source that probes many ports or hosts, in both directions (a cell
-- scanning out; a host scanning a cell's published ports). Settings ([script.portscan_guard]):
--   ports   = 15   distinct ports of one host a source may probe within `window` (vertical)
--   hosts   = 15   distinct hosts a source may probe on one port within `window` (horizontal)
--   window  = 10   seconds
--   block   = 300  seconds the source's traffic is dropped once it crossed a limit
--   sources = 4096 sources tracked at once (the oldest is forgotten first)
-- A probe is a packet that opens something: a TCP SYN (SYN and connect scans), a FIN, NULL or
-- Xmas segment (stealth scans; NULL and Xmas are never legitimate and count as a whole scan),
-- or a UDP datagram. The controller sees only a connection's first packet, so each probe is one
-- new (source, host, port). The source is then dropped at the switch for `block` seconds by
-- a flow with a hard timeout: its later packets never reach the controller.
local PORTS = config.ports or 15
local HOSTS = config.hosts or 15
local WINDOW = config.window or 10
local BLOCK = config.block or 300
local SOURCES = config.sources or 4096

local SYN, ACK, FIN, RST, PSH, URG = 0x02, 0x10, 0x01, 0x04, 0x08, 0x20

-- src -> {since = t, hosts = {[dst] = {[port] = true, n = k}}, ports = {[port] = {[dst] = true, n = k}}}
local seen, tracked = {}, 0
local order = {}   -- sources in the order first seen (for forgetting the oldest)
local blocked = {} -- src -> until

-- 0: not a probe; 1: a probe; math.huge: a scan by itself.
local function weight(pkt)
  if pkt.proto == UDP then return 1 end
  if pkt.proto ~= TCP then return 0 end
  local f = pkt.tcp_flags
  if f == 0 then return math.huge end                                    -- NULL scan
  if f & (FIN | PSH | URG) == (FIN | PSH | URG) then return math.huge end -- Xmas scan
  if f & (SYN | ACK | RST) == SYN then return 1 end                      -- SYN / connect scan
  if f & (FIN | SYN | ACK | RST) == FIN then return 1 end                -- FIN scan
  return 0
end

local function forget(src)
  if seen[src] then seen[src] = nil; tracked = tracked - 1 end
end

local function block(pkt, src, why)
  blocked[src] = now() + BLOCK
  forget(src)
  drop{ip_src = src, hard = BLOCK, priority = 500}
  count("blocked")
  log(string.format("blocked %s for %ds (%s, %s of cell %d)", src, BLOCK, why,
                    pkt.direction == "out" and "from" or "to", pkt.cell))
  return "drop"
end

local function add(set, key)
  if not set[key] then set[key] = true; set.n = set.n + 1 end
  return set.n
end

function on_packet(pkt)
  local w = weight(pkt)
  if w == 0 then return end
  local src = pkt.ip_src
  local t = now()
  local until_ = blocked[src]
  if until_ then
    if t < until_ then return "drop" end -- before the drop flow took hold
    blocked[src] = nil
  end
  count("probes")
  if w == math.huge then return block(pkt, src, "NULL/Xmas probe") end
  local s = seen[src]
  if s and t - s.since > WINDOW then forget(src); s = nil end
  if not s then
    if tracked >= SOURCES then
      -- Forget the oldest tracked sources: memory stays bounded under a spoofed flood.
      while tracked >= SOURCES and #order > 0 do forget(table.remove(order, 1)) end
    end
    s = {since = t, hosts = {}, ports = {}}
    seen[src] = s
    tracked = tracked + 1
    order[#order + 1] = src
  end
  local dst, port = pkt.ip_dst, pkt.port_dst
  s.hosts[dst] = s.hosts[dst] or {n = 0}
  s.ports[port] = s.ports[port] or {n = 0}
  if add(s.hosts[dst], port) >= PORTS then
    return block(pkt, src, string.format("%d ports of %s in %ds", PORTS, dst, WINDOW))
  end
  if add(s.ports[port], dst) >= HOSTS then
    return block(pkt, src, string.format("%d hosts on port %d in %ds", HOSTS, port, WINDOW))
  end
end

-- Sources idle for a window are forgotten, and the order list is compacted.
every(WINDOW, function()
  local t = now()
  local kept = {}
  for _, src in ipairs(order) do
    local s = seen[src]
    if s and t - s.since <= WINDOW then kept[#kept + 1] = src else forget(src) end
  end
  order = kept
  for src, u in pairs(blocked) do if t >= u then blocked[src] = nil end end
end)
