#include "packet/checksum.h"

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
const Ip4 kSrc4 = *Ip4::parse("10.200.0.2");
const Ip4 kDst4 = *Ip4::parse("10.250.0.1");
const Ip6 kSrc6 = *Ip6::parse("fd00::2");
const Ip6 kDst6 = *Ip6::parse("2001:db8::1");

std::uint16_t get16(const Buf& b, std::size_t at) { return static_cast<std::uint16_t>(b[at] << 8 | b[at + 1]); }
void put16(Buf& b, std::size_t at, std::uint16_t v) {
  b[at] = static_cast<std::uint8_t>(v >> 8);
  b[at + 1] = static_cast<std::uint8_t>(v);
}

// Where a frame's transport checksum sits.
std::size_t l4ChecksumAt(const Buf& frame) {
  auto f = parseFrame(frame);
  EXPECT_TRUE(f);
  return f->l4_offset + (f->l4 == L4::kTcp ? 16 : f->l4 == L4::kUdp ? 6 : 2);
}

// What a sender with TX checksum offload leaves in the field: the pseudo-header's sum, folded and
// not inverted (Linux's CHECKSUM_PARTIAL), written out here independently of checksum.cc.
std::uint16_t partialOf(const Buf& frame) {
  auto f = parseFrame(frame);
  EXPECT_TRUE(f);
  Buf p;
  ByteWriter w(p);
  if (f->isIpv4()) {
    w.u32(f->ip_src.v4().v);
    w.u32(f->ip_dst.v4().v);
    w.u8(0);
    w.u8(f->ip_proto);
    w.u16(static_cast<std::uint16_t>(f->ip_payload.size()));
  } else {
    w.bytes(f->ip_src.b);
    w.bytes(f->ip_dst.b);
    w.u32(static_cast<std::uint32_t>(f->ip_payload.size()));
    w.zeros(3);
    w.u8(f->ip_proto);
  }
  return static_cast<std::uint16_t>(checksumPartial(p));
}

struct Case {
  const char* what;
  Buf frame;  // built by builder.cc: every checksum right
  bool offloadable;  // a protocol whose checksum a NIC finishes (TCP, UDP): partial makes sense
};

std::vector<Case> cases() {
  const EthSpec plain{kA, kB};
  const EthSpec tagged{kA, kB, 100};
  std::vector<Case> out;
  for (std::size_t size : {0u, 1u, 2u, 333u, 1400u}) {
    Buf data(size);
    for (std::size_t i = 0; i < size; ++i) data[i] = static_cast<std::uint8_t>(i * 31 + 7);
    for (const EthSpec& eth : {plain, tagged}) {
      out.push_back({"tcp4", buildTcp4(eth, kSrc4, kDst4, 40000, 443, kTcpSyn, 1, 0, data), true});
      out.push_back({"udp4", buildUdp4(eth, kSrc4, kDst4, 40000, 53, data), true});
      out.push_back({"icmp4", buildIcmp4(eth, kSrc4, kDst4, 8, 0, data), false});
      out.push_back({"tcp6", buildTcp6(eth, kSrc6, kDst6, 40000, 443, kTcpAck, 1, 2, data), true});
      out.push_back({"udp6", buildUdp6(eth, kSrc6, kDst6, 40000, 53, data), true});
      out.push_back({"icmp6", buildIcmp6(eth, kSrc6, kDst6, 128, 0, data), false});
    }
  }
  return out;
}

TEST(FinishChecksums, LeavesRightChecksumsAlone) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(std::string(c.what) + " of " + std::to_string(c.frame.size()) + " bytes");
    Buf frame = c.frame;
    EXPECT_FALSE(finishChecksums(frame));
    EXPECT_EQ(frame, c.frame);
  }
}

TEST(FinishChecksums, FinishesWhatTxOffloadLeftPartial) {
  for (const Case& c : cases()) {
    if (!c.offloadable) continue;
    SCOPED_TRACE(std::string(c.what) + " of " + std::to_string(c.frame.size()) + " bytes");
    Buf frame = c.frame;
    put16(frame, l4ChecksumAt(frame), partialOf(frame));
    ASSERT_NE(frame, c.frame);
    EXPECT_TRUE(finishChecksums(frame));
    EXPECT_EQ(frame, c.frame);
    EXPECT_FALSE(finishChecksums(frame)) << "nothing left to finish";
  }
}

TEST(FinishChecksums, AChecksumThatIsWrongOtherwiseStaysWrong) {
  // Corrupted or forged: not the controller's to vouch for (the gateway drops it).
  for (const Case& c : cases()) {
    SCOPED_TRACE(std::string(c.what) + " of " + std::to_string(c.frame.size()) + " bytes");
    Buf frame = c.frame;
    const std::size_t at = l4ChecksumAt(frame);
    put16(frame, at, static_cast<std::uint16_t>(partialOf(frame) ^ 0x0100));
    const Buf wrong = frame;
    EXPECT_FALSE(finishChecksums(frame));
    EXPECT_EQ(frame, wrong);
  }
  // Nor is a partial value in a protocol that is never offloaded (ICMP) taken for one.
  Buf icmp = buildIcmp4(EthSpec{kA, kB}, kSrc4, kDst4, 8, 0, Buf{1, 2, 3, 4});
  put16(icmp, l4ChecksumAt(icmp), 0x1234);
  const Buf before = icmp;
  EXPECT_FALSE(finishChecksums(icmp));
  EXPECT_EQ(icmp, before);
}

TEST(FinishChecksums, EthernetPaddingIsNotSummed) {
  const Buf built = buildUdp4(EthSpec{kA, kB}, kSrc4, kDst4, 1, 2, Buf{1, 2, 3});
  Buf frame = built;
  frame.resize(60, 0xee);  // a short frame padded to Ethernet's minimum, with junk
  put16(frame, l4ChecksumAt(frame), partialOf(frame));
  EXPECT_TRUE(finishChecksums(frame));
  EXPECT_EQ(Buf(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(built.size())), built);
  EXPECT_EQ(frame.back(), 0xee);
}

TEST(FinishChecksums, Ipv4UdpWithoutChecksumStaysWithout) {
  Buf frame = buildUdp4(EthSpec{kA, kB}, kSrc4, kDst4, 1, 2, Buf{1, 2, 3});
  put16(frame, l4ChecksumAt(frame), 0);
  const Buf before = frame;
  EXPECT_FALSE(finishChecksums(frame));
  EXPECT_EQ(frame, before);
}

TEST(FinishChecksums, ComputedZeroGoesOutAsAllOnesForUdp) {
  // A payload whose checksum computes to zero: the builder then writes 0xffff (RFC 768).
  for (std::uint32_t v = 0; v <= 0xffff; ++v) {
    const Buf data = {static_cast<std::uint8_t>(v >> 8), static_cast<std::uint8_t>(v)};
    Buf frame = buildUdp4(EthSpec{kA, kB}, kSrc4, kDst4, 1, 2, data);
    if (get16(frame, l4ChecksumAt(frame)) != 0xffff) continue;
    put16(frame, l4ChecksumAt(frame), partialOf(frame));
    EXPECT_TRUE(finishChecksums(frame));
    EXPECT_EQ(get16(frame, l4ChecksumAt(frame)), 0xffff);
    return;
  }
  FAIL() << "no two-byte payload sums to zero";
}

TEST(FinishChecksums, FragmentsAreLeftAlone) {
  Buf frame = buildUdp4(EthSpec{kA, kB}, kSrc4, kDst4, 1, 2, Buf(100, 9));
  frame[14 + 6] |= 0x20;  // more fragments: the UDP checksum covers data not in this frame
  put16(frame, l4ChecksumAt(frame), partialOf(frame));
  const Buf before = frame;
  EXPECT_FALSE(finishChecksums(frame));
  EXPECT_EQ(frame, before);
}

TEST(FinishChecksums, LeavesWhatItCannotParseOrDoesNotKnow) {
  const Buf arp = buildArp(EthSpec{kA, kB}, kArpRequest, kA, kSrc4, MacAddr{}, kDst4);
  Buf truncated = buildTcp4(EthSpec{kA, kB}, kSrc4, kDst4, 1, 2, kTcpSyn);
  truncated.resize(truncated.size() - 4);
  Buf gre = buildUdp4(EthSpec{kA, kB}, kSrc4, kDst4, 1, 2, Buf{1, 2, 3});
  gre[14 + 9] = 47;  // another protocol
  for (Buf frame : {arp, truncated, gre, Buf{}, Buf(13, 0xff)}) {
    const Buf before = frame;
    EXPECT_FALSE(finishChecksums(frame));
    EXPECT_EQ(frame, before);
  }
}

}  // namespace
}  // namespace cw::packet
