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

-- Constants (<const>: folded into the code) and upvalues, not globals: each global read is a
-- lookup in the global table.
local SYN <const>, ACK <const>, FIN <const>, RST <const>, PSH <const>, URG <const> = 0x02, 0x10, 0x01, 0x04, 0x08, 0x20
local SCAN <const> = FIN | PSH | URG
local TCP <const>, UDP <const> = 6, 17
local now, count, drop, log, ip_str, format = now, count, drop, log, ip_str, string.format

-- Per source (a remote address as a number, or -cell id for a cell scanning out): since = when
-- its window began, targets = the (host, port) pairs it probed in it, as numbers, ports/hosts =
-- distinct counts per host and per port. Numbers, not strings: this runs for every new
-- connection.
local seen, tracked = {}, 0
-- Sources in the order first seen, for forgetting the oldest: order[first..last]; an entry
-- counts only while it is its source's (s.slot), as a source forgotten and seen again has a
-- newer one.
local order, first, last = {}, 1, 0
local blocked = {} -- source -> until

local function forget(key)
  if seen[key] then seen[key] = nil; tracked = tracked - 1 end
end

-- A cell scanning out is blocked as that cell (its key: -cell id), not as its address: the
-- address goes back to the pool when the cell ends, and the next cell to get it must not
-- inherit the block. The drop flow names the cell, so it ends with the cell too.
local function block(pkt, key, src, why)
  blocked[key] = now() + BLOCK
  forget(key)
  count("blocked")
  if key < 0 then
    drop{cell = pkt.cell, hard = BLOCK, priority = 500}
    log(format("blocked cell %d (%s, app %s) for %ds: %s", pkt.cell, ip_str(src), pkt.app, BLOCK, why))
  else
    drop{ip_src = src, hard = BLOCK, priority = 500}
    log(format("blocked %s for %ds: %s (probing cell %d)", ip_str(src), BLOCK, why, pkt.cell))
  end
  return "drop"
end

-- The fields it needs come as arguments (numbers): no field lookups on the way.
function on_packet(pkt, proto, flags, src, dst, sport, port, cell, inbound)
  local heavy = false
  if proto == TCP then
    if flags & (SYN | ACK | RST) ~= SYN then                  -- not a SYN / connect scan probe:
      if flags == 0 or flags & SCAN == SCAN then heavy = true -- NULL, Xmas: a scan by themselves
      elseif flags & (FIN | SYN | ACK | RST) ~= FIN then return end -- nor a FIN probe
    end
  elseif proto ~= UDP then
    return
  end
  local key = src
  if not inbound then key = -cell end
  local target = dst << 16 | port
  local s = seen[key]
  -- A target probed before is nothing new (the common case: a client connecting again): two
  -- lookups. A blocked source is never in `seen` (block() forgets it; it is not tracked again
  -- while blocked), so this comes before the check of `blocked`.
  if s and not heavy and s.targets[target] then return end
  local until_ = blocked[key]
  if until_ then
    if now() < until_ then return "drop" end -- before the drop flow took hold
    blocked[key] = nil
  end
  if heavy then return block(pkt, key, src, "a NULL/Xmas probe") end
  local t = now()
  if s and t - s.since > WINDOW then
    forget(key)
    s = nil
  end
  if not s then
    -- Forget the oldest tracked sources: memory stays bounded under a spoofed flood.
    while tracked >= SOURCES and first <= last do
      local old = order[first]
      order[first] = nil
      local o = seen[old]
      if o and o.slot == first then forget(old) end
      first = first + 1
    end
    last = last + 1
    order[last] = key
    s = {since = t, slot = last, targets = {}, ports = {}, hosts = {}}
    seen[key] = s
    tracked = tracked + 1
  end
  s.targets[target] = true
  count("probes")
  local np = (s.ports[dst] or 0) + 1 -- distinct ports of this host
  s.ports[dst] = np
  if np >= PORTS then
    return block(pkt, key, src, format("%d ports of %s in %ds", PORTS, ip_str(dst), WINDOW))
  end
  local nh = (s.hosts[port] or 0) + 1 -- distinct hosts on this port
  s.hosts[port] = nh
  if nh >= HOSTS then
    return block(pkt, key, src, format("%d hosts on port %d in %ds", HOSTS, port, WINDOW))
  end
end

-- Sources idle for a window are forgotten, and the order list is compacted.
every(WINDOW, function()
  local t = now()
  local kept, n = {}, 0
  for i = first, last do
    local key = order[i]
    local s = seen[key]
    if s and s.slot == i then
      if t - s.since <= WINDOW then
        n = n + 1
        kept[n] = key
        s.slot = n
      else
        forget(key)
      end
    end
  end
  order, first, last = kept, 1, n
  for key, u in pairs(blocked) do if t >= u then blocked[key] = nil end end
end)
