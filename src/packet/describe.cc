// One-line summaries of frames for logs, in tcpdump's vocabulary so they read familiar.
#include <string>

#include "packet/frame.h"

namespace cw::packet {

namespace {

std::string hex16(std::uint16_t v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out = "0x";
  for (int shift = 12; shift >= 0; shift -= 4) out += kDigits[(v >> shift) & 0xf];
  return out;
}

// tcpdump's letters, in its order; ACK alone is '.'.
std::string tcpFlags(std::uint8_t flags) {
  struct Letter {
    std::uint8_t bit;
    char c;
  };
  static constexpr Letter kLetters[] = {{kTcpFin, 'F'}, {kTcpSyn, 'S'}, {kTcpRst, 'R'},
                                        {kTcpPsh, 'P'}, {kTcpAck, '.'}, {kTcpUrg, 'U'},
                                        {kTcpEce, 'E'}, {kTcpCwr, 'W'}};
  std::string out = "[";
  for (const auto& l : kLetters)
    if ((flags & l.bit) != 0) out += l.c;
  if (out.size() == 1) out += "none";
  out += ']';
  return out;
}

// IPv6 addresses in brackets when a port follows, so the colons stay readable.
std::string endpoint(const IpAddr& a, std::uint16_t port) {
  // Appended piecewise: g++ 12 at -O3 reports a false -Wrestrict on "[" + str + "]".
  std::string out;
  if (!a.is_v4()) out += '[';
  out += a.str();
  if (!a.is_v4()) out += ']';
  out += ':';
  out += std::to_string(port);
  return out;
}

std::string describeIp(const Frame& f) {
  const char* family = f.isIpv4() ? "ipv4" : "ipv6";
  std::string out;
  switch (f.l4) {
    case L4::kTcp:
      out = "tcp " + endpoint(f.ip_src, f.src_port) + " -> " + endpoint(f.ip_dst, f.dst_port) +
            " " + tcpFlags(f.tcp_flags);
      break;
    case L4::kUdp:
      out = "udp " + endpoint(f.ip_src, f.src_port) + " -> " + endpoint(f.ip_dst, f.dst_port);
      break;
    case L4::kIcmp:
    case L4::kIcmpv6:
      out = std::string(f.l4 == L4::kIcmp ? "icmp " : "icmp6 ") + f.ip_src.str() + " -> " +
            f.ip_dst.str() + " type " + std::to_string(f.icmp_type) + " code " +
            std::to_string(f.icmp_code);
      break;
    case L4::kNone:
    case L4::kOther:
      out = std::string(family) + " " + f.ip_src.str() + " -> " + f.ip_dst.str() + " proto " +
            std::to_string(f.ip_proto);
      break;
  }
  if (!f.payload.empty()) out += " len " + std::to_string(f.payload.size());
  if (f.ip_later_fragment)
    out += " later-fragment";
  else if (f.ip_fragment)
    out += " fragment";
  return out;
}

std::string describeArp(const Frame& f) {
  if (f.arp_op == kArpRequest)
    return "arp who-has " + f.arp_tpa.str() + " tell " + f.arp_spa.str() + " (" + f.arp_sha.str() +
           ")";
  return "arp reply " + f.arp_spa.str() + " is-at " + f.arp_sha.str() + " to " + f.arp_tpa.str();
}

}  // namespace

std::string describe(const Frame& f) {
  std::string out;
  if (f.vlan_count > 0) out = "vlan " + std::to_string(f.vlan_vid) + " ";
  switch (f.l3) {
    case L3::kArp:
      return out + describeArp(f);
    case L3::kIpv4:
    case L3::kIpv6:
      return out + describeIp(f);
    case L3::kNone:
    case L3::kOther:
      break;
  }
  return out + "ether " + hex16(f.eth_type) + " " + f.eth_src.str() + " -> " + f.eth_dst.str();
}

}  // namespace cw::packet
