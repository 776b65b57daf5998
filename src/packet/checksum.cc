#include "packet/checksum.h"

#include <array>

#include "packet/builder.h"
#include "packet/frame.h"

namespace cw::packet {

namespace {

constexpr std::size_t kIpv4ChecksumAt = 10, kTcpChecksumAt = 16, kUdpChecksumAt = 6, kIcmpChecksumAt = 2;

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

// The sum of the pseudo-header (RFC 793 / RFC 8200 section 8.1) for a segment of l4_size bytes.
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

ChecksumsFinished finishChecksums(std::span<std::uint8_t> frame) {
  ChecksumsFinished done;
  auto parsed = parseFrame(frame);
  if (!parsed || !parsed->isIp()) return done;
  const Frame& f = *parsed;
  if (f.isIpv4()) {
    // parseFrame checked that the header's own length fits the frame.
    const std::size_t header_size = std::size_t{frame[f.l3_offset] & 0x0fu} * 4;
    const std::size_t at = f.l3_offset + kIpv4ChecksumAt;
    const std::uint16_t before = get16(frame, at);
    put16(frame, at, 0);
    const auto header = std::span<const std::uint8_t>(frame).subspan(f.l3_offset, header_size);
    const std::uint16_t sum = checksumFinish(checksumPartial(header));
    put16(frame, at, sum);
    done.changed |= before != sum;
    done.ip = true;
  }
  if (f.ip_fragment) return done;
  // The segment: from the transport header to the end of the IP payload (for UDP: its length).
  std::size_t l4_size = f.ip_payload.size();
  std::size_t checksum_at = 0;
  bool pseudo = true;
  switch (f.l4) {
    case L4::kTcp: checksum_at = kTcpChecksumAt; break;
    case L4::kUdp:
      checksum_at = kUdpChecksumAt;
      l4_size = get16(frame, f.l4_offset + 4);  // parseFrame checked it against the IP length
      if (f.isIpv4() && get16(frame, f.l4_offset + kUdpChecksumAt) == 0) return done;
      break;
    case L4::kIcmp:
      checksum_at = kIcmpChecksumAt;
      pseudo = false;
      break;
    case L4::kIcmpv6: checksum_at = kIcmpChecksumAt; break;
    default: return done;
  }
  const std::size_t at = f.l4_offset + checksum_at;
  const std::uint16_t before = get16(frame, at);
  put16(frame, at, 0);
  const auto segment = std::span<const std::uint8_t>(frame).subspan(f.l4_offset, l4_size);
  std::uint16_t sum = checksumFinish(checksumPartial(segment, pseudo ? pseudoSum(f, l4_size) : 0));
  if (f.l4 == L4::kUdp && sum == 0) sum = 0xffff;
  put16(frame, at, sum);
  done.changed |= before != sum;
  done.l4 = true;
  return done;
}

}  // namespace cw::packet
