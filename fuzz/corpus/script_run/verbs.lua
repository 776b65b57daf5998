function on_packet(pkt, proto, flags, src, dst, sport, dport, cell, inbound)
  drop{ip_src = "10.0.0.0/8", proto = "tcp", port_dst = dport, priority = 7, idle = 1.5, hard = 60, cookie = 3}
  allow{ip_dst = dst, cell = cell}
  limit{cell = cell, kbps = 800, burst = 100}
  flow{ip_src = src, action = "limit", pps = 10}
  remove_flows(3)
  count("x", 2)
  log(pkt.eth_src, pkt.names, pkt.ip_src, ip_str(dst), now())
  local id = after(0.1, function() drop(pkt.ip_src, 23) end)
  cancel(id)
  every(0.5, function() count("t") end)
  if inbound then return "reject" end
end
function inspect_x(pkt) if #pkt.frame > 10 then return "drop" end end
function filter_y(frame) return "allow" end
function run() local pkt = coroutine.yield() while true do pkt = coroutine.yield("continue") end end
