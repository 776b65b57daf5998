#include "packet/checksum.h"

#include <algorithm>
#include <array>

#include "packet/builder.h"
#include "packet/frame.h"

namespace cw::packet {

namespace {

constexpr std::size_t kTcpChecksumAt = 16, kUdpChecksumAt = 6;

std::uint16_t get16(std::span<const std::uint8_t> b, std::size_t at) {
  return static_cast<std::uint16_t>(b[at] << 8 | b[at + 1]);
}

void put16(std::span<std::uint8_t> b, std::size_t at, std::uint16_t value) {
  b[at] = static_cast<std::uint8_t>(value >> 8);
  b[at + 1] = static_cast<std::uint8_t>(value);
}

void put32(std::uint8_t* at, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) at[i] = static_cast<std::uint8_t>(v >> (24 - 8 * i));
}

// The sum of the pseudo-header (RFC 793 / RFC 8200 section 8.1) for a segment of l4_size bytes,
// folded: what a sender with TX offload writes into the checksum field.
std::uint32_t pseudoSum(const Frame& f, std::size_t l4_size) {
  if (f.isIpv4()) {
    std::array<std::uint8_t, 12> p{};
    put32(p.data(), f.ip_src.v4().v);
    put32(p.data() + 4, f.ip_dst.v4().v);
    p[9] = f.ip_proto;
    p[10] = static_cast<std::uint8_t>(l4_size >> 8);
    p[11] = static_cast<std::uint8_t>(l4_size);
    return checksumPartial(p);
  }
  std::array<std::uint8_t, 40> p{};
  std::copy(f.ip_src.b.begin(), f.ip_src.b.end(), p.begin());
  std::copy(f.ip_dst.b.begin(), f.ip_dst.b.end(), p.begin() + 16);
  put32(p.data() + 32, static_cast<std::uint32_t>(l4_size));
  p[39] = f.ip_proto;
  return checksumPartial(p);
}

}  // namespace

bool finishChecksums(std::span<std::uint8_t> frame) {
  auto parsed = parseFrame(frame);
  if (!parsed || !parsed->isIp() || parsed->ip_fragment) return false;
  const Frame& f = *parsed;
  // The segment: from the transport header to the end of the IP payload (UDP: its own length,
  // which parseFrame checked against the IP length).
  std::size_t l4_size = f.ip_payload.size();
  std::size_t at = f.l4_offset;
  if (f.l4 == L4::kTcp) {
    at += kTcpChecksumAt;
  } else if (f.l4 == L4::kUdp) {
    at += kUdpChecksumAt;
    l4_size = get16(frame, f.l4_offset + 4);
  } else {
    return false;
  }
  const std::uint32_t pseudo = pseudoSum(f, l4_size);
  // Never 0 (a sum of words that are not all zero), so an IPv4 UDP "no checksum" never matches.
  if (get16(frame, at) != pseudo) return false;
  put16(frame, at, 0);
  const auto segment = std::span<const std::uint8_t>(frame).subspan(f.l4_offset, l4_size);
  std::uint16_t sum = checksumFinish(checksumPartial(segment, pseudo));
  if (f.l4 == L4::kUdp && sum == 0) sum = 0xffff;
  put16(frame, at, sum);
  return true;
}

}  // namespace cw::packet
