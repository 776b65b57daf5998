#include "common/net.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstdio>
#include <cstring>

namespace cw {

namespace {

int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::optional<MacAddr> MacAddr::parse(std::string_view text) {
  if (text.size() != 17) return std::nullopt;
  MacAddr m;
  for (std::size_t i = 0; i < 6; ++i) {
    int hi = hexval(text[i * 3]);
    int lo = hexval(text[i * 3 + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    if (i < 5 && text[i * 3 + 2] != ':') return std::nullopt;
    m.b[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  return m;
}

std::string MacAddr::str() const {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4],
                b[5]);
  return buf;
}

std::uint64_t MacAddr::as_u64() const {
  std::uint64_t v = 0;
  for (auto x : b) v = (v << 8) | x;
  return v;
}

MacAddr MacAddr::from_u64(std::uint64_t v) {
  MacAddr m;
  for (int i = 5; i >= 0; --i) {
    m.b[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v);
    v >>= 8;
  }
  return m;
}

std::optional<Ip4> Ip4::parse(std::string_view text) {
  if (text.size() > 15) return std::nullopt;
  char buf[16] = {};
  std::memcpy(buf, text.data(), text.size());
  in_addr a{};
  if (inet_pton(AF_INET, buf, &a) != 1) return std::nullopt;
  return Ip4{ntohl(a.s_addr)};
}

std::string Ip4::str() const {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", (v >> 24) & 0xff, (v >> 16) & 0xff,
                (v >> 8) & 0xff, v & 0xff);
  return buf;
}

std::optional<Ip6> Ip6::parse(std::string_view text) {
  if (text.size() > 45) return std::nullopt;
  char buf[46] = {};
  std::memcpy(buf, text.data(), text.size());
  Ip6 a;
  if (inet_pton(AF_INET6, buf, a.b.data()) != 1) return std::nullopt;
  return a;
}

std::string Ip6::str() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(AF_INET6, b.data(), buf, sizeof buf);
  return buf;
}

IpAddr::IpAddr(Ip4 a) {
  b[10] = 0xff;
  b[11] = 0xff;
  b[12] = static_cast<std::uint8_t>(a.v >> 24);
  b[13] = static_cast<std::uint8_t>(a.v >> 16);
  b[14] = static_cast<std::uint8_t>(a.v >> 8);
  b[15] = static_cast<std::uint8_t>(a.v);
}

bool IpAddr::is_v4() const {
  for (int i = 0; i < 10; ++i)
    if (b[static_cast<std::size_t>(i)] != 0) return false;
  return b[10] == 0xff && b[11] == 0xff;
}

Ip4 IpAddr::v4() const {
  return Ip4{(std::uint32_t{b[12]} << 24) | (std::uint32_t{b[13]} << 16) |
             (std::uint32_t{b[14]} << 8) | b[15]};
}

std::optional<IpAddr> IpAddr::parse(std::string_view text) {
  if (auto a = Ip4::parse(text)) return IpAddr(*a);
  if (auto a = Ip6::parse(text)) return IpAddr(*a);
  return std::nullopt;
}

std::string IpAddr::str() const { return is_v4() ? v4().str() : v6().str(); }

std::optional<Cidr> Cidr::parse(std::string_view text) {
  auto slash = text.find('/');
  auto addr = IpAddr::parse(text.substr(0, slash));
  if (!addr) return std::nullopt;
  unsigned max = addr->is_v4() ? 32 : 128;
  unsigned len = max;
  if (slash != std::string_view::npos) {
    auto digits = text.substr(slash + 1);
    auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), len);
    if (ec != std::errc() || p != digits.data() + digits.size() || digits.empty() || len > max)
      return std::nullopt;
  }
  Cidr c;
  c.addr = *addr;
  c.length = static_cast<std::uint8_t>(len);
  // Canonical form: host bits cleared, so equal prefixes compare equal.
  unsigned bits = c.bits();
  for (unsigned i = bits; i < 128; ++i) c.addr.b[i / 8] &= static_cast<std::uint8_t>(~(0x80u >> (i % 8)));
  return c;
}

bool Cidr::contains(const IpAddr& a) const {
  if (a.is_v4() != is_v4()) return false;
  unsigned n = bits();
  unsigned full = n / 8;
  if (std::memcmp(a.b.data(), addr.b.data(), full) != 0) return false;
  if (n % 8 == 0) return true;
  auto mask = static_cast<std::uint8_t>(0xff00u >> (n % 8));
  return (a.b[full] & mask) == (addr.b[full] & mask);
}

std::string Cidr::str() const { return addr.str() + "/" + std::to_string(length); }

}  // namespace cw

std::size_t std::hash<cw::IpAddr>::operator()(const cw::IpAddr& a) const noexcept {
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;
  std::memcpy(&hi, a.b.data(), 8);
  std::memcpy(&lo, a.b.data() + 8, 8);
  return std::hash<std::uint64_t>{}(hi * 0x9e3779b97f4a7c15ULL ^ lo);
}
