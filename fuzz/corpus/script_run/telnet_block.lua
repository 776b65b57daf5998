-- telnet_block: the seed design's telnet filter, unmodified in style. Every global function
-- named filter_* gets the Ethernet frame as a string; ip_src, ip_dst, port_src, port_dst and
-- the header lengths IP_HEADER_LEN and TCP_HEADER_LEN are set for the packet; drop(ip, port)
-- installs a flow that drops that source's traffic to that port.
function filter_telnet(frame)
  local ip = string.sub(frame, ETH_HEADER_LEN + 1)
  local proto = string.unpack("B", ip, 10)
  if proto ~= TCP then return end
  -- A fragment after the first carries data, no TCP header: nothing here is a port.
  if string.unpack(">H", ip, 7) & 0x1fff ~= 0 then return end
  -- IP_HEADER_LEN is this packet's (20, or more with IP options): the TCP header starts there.
  local tcp = string.sub(ip, IP_HEADER_LEN + 1)
  if #tcp < 4 then return end
  local dport = string.unpack(">H", tcp, 3)
  if dport == TELNET then
    drop(ip_src, port_dst)
  end
end
