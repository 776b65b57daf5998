-- 1. A function per packet. pkt is a view of the packet being handled (fields are read only
--    when asked for; nothing is built per packet): keep fields, not pkt. The fields most
--    scripts read also come as arguments, as numbers, which costs no lookup at all:
--    on_packet(pkt, proto, tcp_flags, ip_src, ip_dst, port_src, port_dst, cell, inbound)
--    (addresses as numbers; inbound: true when the packet goes towards the cell).
function on_packet(pkt)
  if pkt.port_dst == 23 then return "drop" end
end

-- 2. A long-running coroutine: each packet is the value of coroutine.yield(); what it yields
--    is that packet's verdict. Its locals are its state.
function run()
  local pkt = coroutine.yield()
  while true do
    local verdict = nil
    if pkt.proto == UDP and pkt.port_dst == 19 then verdict = "drop" end
    pkt = coroutine.yield(verdict)
  end
end

-- 3. The seed style (the BitVisor/Lua SDN design's scripts run unmodified): every global
--    filter_* function gets the Ethernet frame as a string, with ip_src, ip_dst, port_src and
--    port_dst set as globals for the packet.
function filter_telnet(frame)
  local ip = string.sub(frame, ETH_HEADER_LEN + 1)
  if string.unpack("B", ip, 10) ~= TCP then return end
  local tcp = string.sub(ip, IP_HEADER_LEN + 1)
  if string.unpack(">H", tcp, 3) == TELNET then drop(ip_src, port_dst) end
end
