// Plain network value types shared by every layer: MAC and IP addresses, CIDR prefixes.
// Parsing returns std::optional (the caller knows what the text was for and says so).
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace cw {

struct MacAddr {
  std::array<std::uint8_t, 6> b{};

  static std::optional<MacAddr> parse(std::string_view text);
  std::string str() const;
  std::uint64_t as_u64() const;
  static MacAddr from_u64(std::uint64_t v);
  bool is_multicast() const { return (b[0] & 1) != 0; }
  auto operator<=>(const MacAddr&) const = default;
};

// IPv4 address in host byte order.
struct Ip4 {
  std::uint32_t v = 0;

  static std::optional<Ip4> parse(std::string_view text);
  std::string str() const;
  auto operator<=>(const Ip4&) const = default;
};

// IPv6 address in network byte order.
struct Ip6 {
  std::array<std::uint8_t, 16> b{};

  static std::optional<Ip6> parse(std::string_view text);
  std::string str() const;
  auto operator<=>(const Ip6&) const = default;
};

// Either family; IPv4 is stored as an IPv4-mapped IPv6 address (::ffff:a.b.c.d) so that one
// 128-bit key serves both families in tries and hash tables.
struct IpAddr {
  std::array<std::uint8_t, 16> b{};

  IpAddr() = default;
  explicit IpAddr(Ip4 a);
  explicit IpAddr(const Ip6& a) : b(a.b) {}

  static std::optional<IpAddr> parse(std::string_view text);
  bool is_v4() const;
  Ip4 v4() const;  // only when is_v4()
  Ip6 v6() const { return Ip6{b}; }
  std::string str() const;
  auto operator<=>(const IpAddr&) const = default;
};

// An address prefix: "10.0.0.0/8", "2001:db8::/32", or a bare address (full length).
// For IPv4 the length counts IPv4 bits (0..32); bits() gives the length in the 128-bit space.
struct Cidr {
  IpAddr addr;
  std::uint8_t length = 0;  // in the address family's own bits

  static std::optional<Cidr> parse(std::string_view text);
  bool is_v4() const { return addr.is_v4(); }
  unsigned bits() const { return is_v4() ? 96u + length : length; }
  bool contains(const IpAddr& a) const;
  std::string str() const;
  auto operator<=>(const Cidr&) const = default;
};

}  // namespace cw

template <>
struct std::hash<cw::IpAddr> {
  std::size_t operator()(const cw::IpAddr& a) const noexcept;
};
template <>
struct std::hash<cw::MacAddr> {
  std::size_t operator()(const cw::MacAddr& a) const noexcept {
    return std::hash<std::uint64_t>{}(a.as_u64());
  }
};
