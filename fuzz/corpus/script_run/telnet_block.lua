-- telnet_block: the seed design's telnet filter, unmodified in style. Every global function
-- named filter_* gets the Ethernet frame as a string; ip_src, ip_dst, port_src and port_dst
-- are set for the packet; drop(ip, port) installs a flow that drops that source's traffic to
-- that port.
function filter_telnet(frame)
  local ip = string.sub(frame, ETH_HEADER_LEN + 1)
  local proto = string.unpack("B", ip, 10)
  if proto ~= TCP then return end
  local tcp = string.sub(ip, IP_HEADER_LEN + 1)
  local dport = string.unpack(">H", tcp, 3)
  if dport == TELNET then
    drop(ip_src, port_dst)
  end
end
