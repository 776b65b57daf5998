local APP = config.app or "backup"
local limited = {}   -- cell -> true: one limit per cell, installed on its first connection

function on_packet(pkt)
  if pkt.app ~= APP or pkt.direction ~= "out" then return end
  if pkt.proto == TCP and (pkt.port_dst == 445 or pkt.port_dst == 139) then
    count("smb refused")
    return "reject"                    -- fails at once in the app
  end
  if not limited[pkt.cell] then
    limited[pkt.cell] = true
    -- Everything the cell sends goes through a meter; open connections included.
    limit{cell = pkt.cell, kbps = 8000, burst = 1000, cookie = pkt.cell}
  end
end
