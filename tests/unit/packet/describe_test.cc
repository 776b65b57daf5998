#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "packet/builder.h"
#include "packet/frame.h"

namespace cw::packet {
namespace {

using Buf = std::vector<std::uint8_t>;

const MacAddr kA = *MacAddr::parse("02:00:00:00:00:02");
const MacAddr kB = *MacAddr::parse("02:00:00:00:00:01");
const Ip4 kCell = *Ip4::parse("10.0.0.2");
const Ip4 kGw = *Ip4::parse("10.0.0.1");
const Ip6 kCell6 = *Ip6::parse("2001:db8::2");
const Ip6 kGw6 = *Ip6::parse("2001:db8::1");

struct DescribeCase {
  Buf frame;
  std::string line;
};

TEST(Describe, OneLinePerKind) {
  const EthSpec eth{kA, kB};
  const Buf four = {1, 2, 3, 4};
  Buf lldp(60, 0);
  lldp[12] = 0x88;
  lldp[13] = 0xcc;
  const std::vector<DescribeCase> cases = {
      {buildTcp4(eth, kCell, kGw, 40000, 80, kTcpSyn), "tcp 10.0.0.2:40000 -> 10.0.0.1:80 [S]"},
      {buildTcp4(eth, kGw, kCell, 80, 40000, kTcpSyn | kTcpAck),
       "tcp 10.0.0.1:80 -> 10.0.0.2:40000 [S.]"},
      {buildTcp4(eth, kCell, kGw, 1, 2, kTcpFin | kTcpPsh | kTcpAck, 0, 0, four),
       "tcp 10.0.0.2:1 -> 10.0.0.1:2 [FP.] len 4"},
      {buildTcp4(eth, kCell, kGw, 1, 2, 0), "tcp 10.0.0.2:1 -> 10.0.0.1:2 [none]"},
      {buildTcp6(EthSpec{kA, kB, 7}, kCell6, kGw6, 5, 443, kTcpRst),
       "vlan 7 tcp [2001:db8::2]:5 -> [2001:db8::1]:443 [R]"},
      {buildUdp4(eth, kCell, kGw, 5353, 53, four), "udp 10.0.0.2:5353 -> 10.0.0.1:53 len 4"},
      {buildIcmp4(eth, kCell, kGw, 8, 0, four), "icmp 10.0.0.2 -> 10.0.0.1 type 8 code 0 len 4"},
      {buildIcmp6(eth, kCell6, kGw6, 135, 0), "icmp6 2001:db8::2 -> 2001:db8::1 type 135 code 0"},
      {buildArp(eth, kArpRequest, kA, kCell, MacAddr{}, kGw),
       "arp who-has 10.0.0.1 tell 10.0.0.2 (02:00:00:00:00:02)"},
      {buildArp(eth, kArpReply, kB, kGw, kA, kCell),
       "arp reply 10.0.0.1 is-at 02:00:00:00:00:01 to 10.0.0.2"},
      {lldp, "ether 0x88cc 00:00:00:00:00:00 -> 00:00:00:00:00:00"},
  };
  for (const DescribeCase& c : cases) {
    auto r = parseFrame(c.frame);
    ASSERT_TRUE(r) << c.line;
    EXPECT_EQ(describe(*r), c.line);
  }
}

TEST(Describe, Fragments) {
  Buf frame = buildUdp4(EthSpec{kA, kB}, kCell, kGw, 1, 2, Buf(8, 0));
  frame[14 + 6] = 0x20;  // more fragments, offset 0
  auto first = parseFrame(frame);
  ASSERT_TRUE(first);
  EXPECT_EQ(describe(*first), "udp 10.0.0.2:1 -> 10.0.0.1:2 len 8 fragment");
  frame[14 + 7] = 0x03;  // offset 24 bytes
  auto later = parseFrame(frame);
  ASSERT_TRUE(later);
  EXPECT_EQ(describe(*later), "ipv4 10.0.0.2 -> 10.0.0.1 proto 17 later-fragment");
}

}  // namespace
}  // namespace cw::packet
