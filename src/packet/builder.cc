#include "packet/builder.h"

#include <array>
#include <cassert>

#include "packet/frame.h"

namespace cw::packet {

namespace {

constexpr std::uint8_t kTtl = 64;
constexpr std::size_t kIpv4HeaderSize = 20, kTcpHeaderSize = 20, kUdpHeaderSize = 8,
                      kIcmpHeaderSize = 4;
constexpr std::size_t kTcpChecksumAt = 16, kUdpChecksumAt = 6, kIcmpChecksumAt = 2;
[[maybe_unused]] constexpr std::size_t kMaxIpLength = 0xffff;  // only in asserts

std::uint16_t u16Size(std::size_t n) {
  assert(n <= kMaxIpLength && "frame too large for an IP length field");
  return static_cast<std::uint16_t>(n);
}

void writeEth(ByteWriter& w, const EthSpec& eth, std::uint16_t type) {
  w.bytes(eth.dst.b);
  w.bytes(eth.src.b);
  if (eth.vlan_vid != 0) {
    w.u16(kEthVlan);
    w.u16(eth.vlan_vid & 0x0fff);
  }
  w.u16(type);
}

void writeIp4(ByteWriter& w, Ip4 src, Ip4 dst, std::uint8_t proto, std::size_t l4_size) {
  const std::size_t start = w.offset();
  w.u8(0x45);  // version 4, 5 words
  w.u8(0);     // DSCP/ECN
  w.u16(u16Size(kIpv4HeaderSize + l4_size));
  w.u16(0);       // identification: DF set, never fragmented
  w.u16(0x4000);  // DF
  w.u8(kTtl);
  w.u8(proto);
  const std::size_t checksum_at = w.offset();
  w.u16(0);
  w.u32(src.v);
  w.u32(dst.v);
  const Bytes header = Bytes(w.buffer()).subspan(start, kIpv4HeaderSize);
  w.patch_u16(checksum_at, checksumFinish(checksumPartial(header)));
}

void writeIp6(ByteWriter& w, const Ip6& src, const Ip6& dst, std::uint8_t next,
              std::size_t l4_size) {
  w.u32(0x60000000);  // version 6, traffic class 0, flow label 0
  w.u16(u16Size(l4_size));
  w.u8(next);
  w.u8(kTtl);
  w.bytes(src.b);
  w.bytes(dst.b);
}

std::uint32_t pseudoSum4(Ip4 src, Ip4 dst, std::uint8_t proto, std::size_t l4_size) {
  std::vector<std::uint8_t> pseudo;
  pseudo.reserve(12);
  ByteWriter w(pseudo);
  w.u32(src.v);
  w.u32(dst.v);
  w.u8(0);
  w.u8(proto);
  w.u16(u16Size(l4_size));
  return checksumPartial(pseudo);
}

std::uint32_t pseudoSum6(const Ip6& src, const Ip6& dst, std::uint8_t next, std::size_t l4_size) {
  std::vector<std::uint8_t> pseudo;
  pseudo.reserve(40);
  ByteWriter w(pseudo);
  w.bytes(src.b);
  w.bytes(dst.b);
  w.u32(static_cast<std::uint32_t>(l4_size));
  w.zeros(3);
  w.u8(next);
  return checksumPartial(pseudo);
}

// Fills in the transport checksum of the segment that runs from `l4_start` to the end of
// `out`. UDP sends a computed zero as 0xffff, since zero means "no checksum" (RFC 768).
void patchChecksum(std::vector<std::uint8_t>& out, std::size_t l4_start, std::size_t checksum_at,
                   std::uint32_t pseudo_sum, bool udp) {
  const Bytes segment = Bytes(out).subspan(l4_start);
  std::uint16_t checksum = checksumFinish(checksumPartial(segment, pseudo_sum));
  if (udp && checksum == 0) checksum = 0xffff;
  ByteWriter(out).patch_u16(l4_start + checksum_at, checksum);
}

void writeTcp(ByteWriter& w, std::uint16_t sport, std::uint16_t dport, std::uint8_t flags,
              std::uint32_t seq, std::uint32_t ack, Bytes payload) {
  w.u16(sport);
  w.u16(dport);
  w.u32(seq);
  w.u32(ack);
  w.u8(0x50);  // data offset: 5 words, no options
  w.u8(flags);
  w.u16(0xffff);  // window
  w.u16(0);       // checksum, patched later
  w.u16(0);       // urgent pointer
  w.bytes(payload);
}

void writeUdp(ByteWriter& w, std::uint16_t sport, std::uint16_t dport, Bytes payload) {
  w.u16(sport);
  w.u16(dport);
  w.u16(u16Size(kUdpHeaderSize + payload.size()));
  w.u16(0);  // checksum, patched later
  w.bytes(payload);
}

void writeIcmp(ByteWriter& w, std::uint8_t type, std::uint8_t code, Bytes payload) {
  w.u8(type);
  w.u8(code);
  w.u16(0);  // checksum, patched later
  w.bytes(payload);
}

}  // namespace

std::uint32_t checksumPartial(Bytes data, std::uint32_t sum) {
  std::uint64_t acc = sum;
  ByteReader r(data);
  while (r.remaining() >= 2) acc += r.u16();
  if (!r.empty()) acc += std::uint32_t{r.u8()} << 8;
  while ((acc >> 16) != 0) acc = (acc & 0xffff) + (acc >> 16);
  return static_cast<std::uint32_t>(acc);
}

std::uint16_t checksumFinish(std::uint32_t sum) {
  while ((sum >> 16) != 0) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum & 0xffff);
}

std::vector<std::uint8_t> buildTcp4(const EthSpec& eth, Ip4 src, Ip4 dst, std::uint16_t sport,
                                    std::uint16_t dport, std::uint8_t flags, std::uint32_t seq,
                                    std::uint32_t ack, Bytes payload) {
  std::vector<std::uint8_t> out;
  ByteWriter w(out);
  const std::size_t l4_size = kTcpHeaderSize + payload.size();
  writeEth(w, eth, kEthIpv4);
  writeIp4(w, src, dst, kProtoTcp, l4_size);
  const std::size_t l4_start = w.offset();
  writeTcp(w, sport, dport, flags, seq, ack, payload);
  patchChecksum(out, l4_start, kTcpChecksumAt, pseudoSum4(src, dst, kProtoTcp, l4_size), false);
  return out;
}

std::vector<std::uint8_t> buildUdp4(const EthSpec& eth, Ip4 src, Ip4 dst, std::uint16_t sport,
                                    std::uint16_t dport, Bytes payload) {
  std::vector<std::uint8_t> out;
  ByteWriter w(out);
  const std::size_t l4_size = kUdpHeaderSize + payload.size();
  writeEth(w, eth, kEthIpv4);
  writeIp4(w, src, dst, kProtoUdp, l4_size);
  const std::size_t l4_start = w.offset();
  writeUdp(w, sport, dport, payload);
  patchChecksum(out, l4_start, kUdpChecksumAt, pseudoSum4(src, dst, kProtoUdp, l4_size), true);
  return out;
}

std::vector<std::uint8_t> buildIcmp4(const EthSpec& eth, Ip4 src, Ip4 dst, std::uint8_t type,
                                     std::uint8_t code, Bytes payload) {
  std::vector<std::uint8_t> out;
  ByteWriter w(out);
  const std::size_t l4_size = kIcmpHeaderSize + payload.size();
  writeEth(w, eth, kEthIpv4);
  writeIp4(w, src, dst, kProtoIcmp, l4_size);
  const std::size_t l4_start = w.offset();
  writeIcmp(w, type, code, payload);
  patchChecksum(out, l4_start, kIcmpChecksumAt, 0, false);  // ICMPv4: no pseudo-header
  return out;
}

std::vector<std::uint8_t> buildTcp6(const EthSpec& eth, const Ip6& src, const Ip6& dst,
                                    std::uint16_t sport, std::uint16_t dport, std::uint8_t flags,
                                    std::uint32_t seq, std::uint32_t ack, Bytes payload) {
  std::vector<std::uint8_t> out;
  ByteWriter w(out);
  const std::size_t l4_size = kTcpHeaderSize + payload.size();
  writeEth(w, eth, kEthIpv6);
  writeIp6(w, src, dst, kProtoTcp, l4_size);
  const std::size_t l4_start = w.offset();
  writeTcp(w, sport, dport, flags, seq, ack, payload);
  patchChecksum(out, l4_start, kTcpChecksumAt, pseudoSum6(src, dst, kProtoTcp, l4_size), false);
  return out;
}

std::vector<std::uint8_t> buildUdp6(const EthSpec& eth, const Ip6& src, const Ip6& dst,
                                    std::uint16_t sport, std::uint16_t dport, Bytes payload) {
  std::vector<std::uint8_t> out;
  ByteWriter w(out);
  const std::size_t l4_size = kUdpHeaderSize + payload.size();
  writeEth(w, eth, kEthIpv6);
  writeIp6(w, src, dst, kProtoUdp, l4_size);
  const std::size_t l4_start = w.offset();
  writeUdp(w, sport, dport, payload);
  patchChecksum(out, l4_start, kUdpChecksumAt, pseudoSum6(src, dst, kProtoUdp, l4_size), true);
  return out;
}

std::vector<std::uint8_t> buildIcmp6(const EthSpec& eth, const Ip6& src, const Ip6& dst,
                                     std::uint8_t type, std::uint8_t code, Bytes payload) {
  std::vector<std::uint8_t> out;
  ByteWriter w(out);
  const std::size_t l4_size = kIcmpHeaderSize + payload.size();
  writeEth(w, eth, kEthIpv6);
  writeIp6(w, src, dst, kProtoIcmpv6, l4_size);
  const std::size_t l4_start = w.offset();
  writeIcmp(w, type, code, payload);
  patchChecksum(out, l4_start, kIcmpChecksumAt, pseudoSum6(src, dst, kProtoIcmpv6, l4_size), false);
  return out;
}

std::vector<std::uint8_t> buildArp(const EthSpec& eth, std::uint16_t op, MacAddr sha, Ip4 spa,
                                   MacAddr tha, Ip4 tpa) {
  std::vector<std::uint8_t> out;
  ByteWriter w(out);
  writeEth(w, eth, kEthArp);
  w.u16(1);  // hardware: Ethernet
  w.u16(kEthIpv4);
  w.u8(6);
  w.u8(4);
  w.u16(op);
  w.bytes(sha.b);
  w.u32(spa.v);
  w.bytes(tha.b);
  w.u32(tpa.v);
  return out;
}

}  // namespace cw::packet
