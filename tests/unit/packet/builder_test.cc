#include "packet/builder.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "packet/frame.h"

namespace cw::packet {
namespace {

using Buf = std::vector<std::uint8_t>;

const MacAddr kA = *MacAddr::parse("02:00:00:00:00:02");
const MacAddr kB = *MacAddr::parse("02:00:00:00:00:01");
const Ip4 kSrc4 = *Ip4::parse("10.0.0.2");
const Ip4 kDst4 = *Ip4::parse("10.0.0.1");
const Ip6 kSrc6 = *Ip6::parse("fe80::1");
const Ip6 kDst6 = *Ip6::parse("2001:db8:ffff::ffff");

// The pseudo-header written out independently of builder.cc, so a shared mistake shows.
std::uint32_t pseudoSum(const Frame& f) {
  Buf p;
  ByteWriter w(p);
  if (f.isIpv4()) {
    w.u32(f.ip_src.v4().v);
    w.u32(f.ip_dst.v4().v);
    w.u8(0);
    w.u8(f.ip_proto);
    w.u16(static_cast<std::uint16_t>(f.ip_payload.size()));
  } else {
    w.bytes(f.ip_src.b);
    w.bytes(f.ip_dst.b);
    w.u32(static_cast<std::uint32_t>(f.ip_payload.size()));
    w.zeros(3);
    w.u8(f.ip_proto);
  }
  return checksumPartial(p);
}

// A correct checksum makes the covered bytes (checksum included) sum to 0xffff.
void expectChecksumsVerify(const Buf& frame) {
  auto r = parseFrame(frame);
  ASSERT_TRUE(r) << parseErrorName(r.error());
  const Frame& f = *r;
  ASSERT_TRUE(f.isIp());
  if (f.isIpv4()) {
    EXPECT_EQ(checksumFinish(checksumPartial(f.raw.subspan(f.l3_offset, 20))), 0);
  }
  const bool pseudo = f.l4 != L4::kIcmp;
  const std::uint32_t start = pseudo ? pseudoSum(f) : 0;
  EXPECT_EQ(checksumFinish(checksumPartial(f.ip_payload, start)), 0);
}

struct BuildCase {
  const char* what;
  Buf frame;
  L4 l4;
};

std::vector<BuildCase> buildCases() {
  const EthSpec plain{kA, kB};
  const EthSpec tagged{kA, kB, 4094};
  std::vector<BuildCase> cases;
  for (std::size_t size : {0u, 1u, 3u, 64u, 1401u}) {
    Buf data(size);
    for (std::size_t i = 0; i < size; ++i) data[i] = static_cast<std::uint8_t>(i * 37 + 11);
    for (const EthSpec& eth : {plain, tagged}) {
      cases.push_back(
          {"tcp4", buildTcp4(eth, kSrc4, kDst4, 40000, 80, kTcpPsh | kTcpAck, 0xfffffff0, 77, data),
           L4::kTcp});
      cases.push_back({"udp4", buildUdp4(eth, kSrc4, kDst4, 53, 65535, data), L4::kUdp});
      cases.push_back({"icmp4", buildIcmp4(eth, kSrc4, kDst4, 3, 3, data), L4::kIcmp});
      cases.push_back({"tcp6", buildTcp6(eth, kSrc6, kDst6, 1, 2, kTcpRst, 5, 6, data), L4::kTcp});
      cases.push_back({"udp6", buildUdp6(eth, kSrc6, kDst6, 546, 547, data), L4::kUdp});
      cases.push_back({"icmp6", buildIcmp6(eth, kSrc6, kDst6, 128, 0, data), L4::kIcmpv6});
    }
  }
  return cases;
}

TEST(Builder, ChecksumsVerifyForEveryProtocol) {
  for (const BuildCase& c : buildCases()) {
    SCOPED_TRACE(std::string(c.what) + " size " + std::to_string(c.frame.size()));
    expectChecksumsVerify(c.frame);
    auto r = parseFrame(c.frame);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->l4, c.l4);
  }
}

TEST(Builder, BuiltFieldsRoundTrip) {
  const Buf data = {9, 8, 7};
  Buf buf = buildUdp6(EthSpec{kA, kB, 10}, kSrc6, kDst6, 1234, 5678, data);
  auto r = parseFrame(buf);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->eth_src, kA);
  EXPECT_EQ(r->eth_dst, kB);
  EXPECT_EQ(r->vlan_count, 1);
  EXPECT_EQ(r->vlan_vid, 10);
  EXPECT_EQ(r->ip_src, IpAddr(kSrc6));
  EXPECT_EQ(r->ip_dst, IpAddr(kDst6));
  EXPECT_EQ(r->ip_ttl, 64);
  EXPECT_EQ(r->src_port, 1234);
  EXPECT_EQ(r->dst_port, 5678);
  EXPECT_EQ(Buf(r->payload.begin(), r->payload.end()), data);
  // Tag on the wire: TPID 0x8100, then PCP 0 / DEI 0 / VID 10.
  EXPECT_EQ(buf[12], 0x81);
  EXPECT_EQ(buf[13], 0x00);
  EXPECT_EQ(buf[14], 0x00);
  EXPECT_EQ(buf[15], 10);
}

TEST(Builder, Arp) {
  Buf buf = buildArp(EthSpec{kA, MacAddr::from_u64(0xffffffffffff)}, kArpRequest, kA, kSrc4,
                     MacAddr{}, kDst4);
  ASSERT_EQ(buf.size(), 42u);
  auto r = parseFrame(buf);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->l3, L3::kArp);
  EXPECT_EQ(r->arp_op, kArpRequest);
  EXPECT_EQ(r->arp_sha, kA);
  EXPECT_EQ(r->arp_spa, kSrc4);
  EXPECT_EQ(r->arp_tha, MacAddr{});
  EXPECT_EQ(r->arp_tpa, kDst4);
  EXPECT_TRUE(r->eth_dst.is_multicast());
}

// Worked by hand with RFC 1071's algorithm (16-bit big-endian words, end-around carry):
//   IPv4 header 4500 0028 0000 4000 4006 ____ 0a00 0002 0a00 0001
//     sum = d931 (no carries), checksum = ~d931 = 26ce
//   TCP pseudo-header 0a00 0002 0a00 0001 0006 0014 -> 141d
//   TCP header 9c40 0050 0000 0001 0000 0000 5002 ffff ____ 0000
//     9c40+0050+0001+5002 = ec93; +ffff = 1ec92 -> ec93
//     141d + ec93 = 100b0 -> 00b1; checksum = ~00b1 = ff4e
TEST(Builder, TcpSynMatchesHandComputedFrame) {
  const Buf expected = {
      0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x08, 0x00,  // eth
      0x45, 0x00, 0x00, 0x28, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0x26, 0xce,              // ip
      0x0a, 0x00, 0x00, 0x02, 0x0a, 0x00, 0x00, 0x01,                                      //
      0x9c, 0x40, 0x00, 0x50, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,              // tcp
      0x50, 0x02, 0xff, 0xff, 0xff, 0x4e, 0x00, 0x00,                                      //
  };
  EXPECT_EQ(buildTcp4(EthSpec{kA, kB}, kSrc4, kDst4, 40000, 80, kTcpSyn, 1), expected);
}

TEST(Checksum, Rfc1071Example) {
  // RFC 1071 section 3: 0001 f203 f4f5 f6f7 sums to 2ddf0, folded ddf2.
  const Buf data = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  EXPECT_EQ(checksumPartial(data), 0xddf2u);
  EXPECT_EQ(checksumFinish(checksumPartial(data)), 0x220d);
  // Chained over even-sized chunks gives the same sum.
  const Bytes all(data);
  EXPECT_EQ(checksumPartial(all.subspan(4), checksumPartial(all.first(4))), 0xddf2u);
  // An odd tail counts as the high byte of a zero-padded word.
  const Buf odd = {0x12, 0x34, 0x56};
  EXPECT_EQ(checksumPartial(odd), 0x1234u + 0x5600u);
  EXPECT_EQ(checksumFinish(0), 0xffff);
  EXPECT_EQ(checksumFinish(0x1fffe), 0);  // folds before inverting
}

TEST(Checksum, UdpNeverSendsZero) {
  // Appending the checksum of a frame as a payload word makes the new sum 0xffff, i.e. a
  // computed checksum of zero, which UDP must send as 0xffff (RFC 768).
  const EthSpec eth{kA, kB};
  Buf probe = buildUdp4(eth, kSrc4, kDst4, 7, 7, Buf{0, 0});
  const std::size_t checksum_at = 14 + 20 + 6;
  const Buf word = {probe[checksum_at], probe[checksum_at + 1]};
  Buf zero_sum = buildUdp4(eth, kSrc4, kDst4, 7, 7, word);
  EXPECT_EQ(zero_sum[checksum_at], 0xff);
  EXPECT_EQ(zero_sum[checksum_at + 1], 0xff);
  expectChecksumsVerify(zero_sum);
}

}  // namespace
}  // namespace cw::packet
