local LIMIT, WINDOW, BLOCK = config.ports or 15, config.window or 10, config.block or 300
local SYN, ACK = 0x02, 0x10
local seen = {}    -- source -> {since = t, ports = {[port] = true}, n = count}

function on_packet(pkt, proto, flags, src, dst, sport, dport)
  -- Only connection openings are probes: a SYN without ACK.
  if proto ~= TCP or flags & (SYN | ACK) ~= SYN then return end
  local t = now()
  local s = seen[src]
  if not s or t - s.since > WINDOW then
    s = {since = t, ports = {}, n = 0}
    seen[src] = s
  end
  if not s.ports[dport] then
    s.ports[dport] = true
    s.n = s.n + 1
  end
  if s.n >= LIMIT then
    seen[src] = nil
    drop{ip_src = src, hard = BLOCK}   -- in the switch: its next packets never reach us
    count("blocked")
    log("blocked", ip_str(src), "after", LIMIT, "ports in", WINDOW, "s")
    return "drop"                      -- and this one
  end
end

-- Forget quiet sources, so the table does not grow.
every(WINDOW, function()
  local t = now()
  for src, s in pairs(seen) do if t - s.since > WINDOW then seen[src] = nil end end
end)
