// Helpers shared by the DNS tests: addresses, hand-made messages for shapes the builder never
// produces, and readable views of an Answer.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <initializer_list>
#include <string>
#include <vector>

#include "dns/build.h"
#include "dns/dns.h"

namespace cw::dns::testing {

using Buf = std::vector<std::uint8_t>;

inline IpAddr ip(const char* text) {
  return *IpAddr::parse(text);
}
inline Ip4 ip4(const char* text) {
  return *Ip4::parse(text);
}
inline Ip6 ip6(const char* text) {
  return *Ip6::parse(text);
}

// A response header: id 0x1234, QR=1, RD, RA, the given counts.
inline Buf rawHeader(std::uint16_t qd, std::uint16_t an, std::uint16_t flags = 0x8180) {
  Buf out;
  ByteWriter w(out);
  w.u16(0x1234);
  w.u16(flags);
  w.u16(qd);
  w.u16(an);
  w.u16(0);
  w.u16(0);
  return out;
}

inline void append(Buf& out, std::initializer_list<int> bytes) {
  for (int b : bytes) out.push_back(static_cast<std::uint8_t>(b));
}

inline void appendName(Buf& out, const std::string& dotted) {
  std::size_t start = 0;
  while (start < dotted.size()) {
    auto dot = dotted.find('.', start);
    if (dot == std::string::npos) dot = dotted.size();
    out.push_back(static_cast<std::uint8_t>(dot - start));
    out.insert(out.end(), dotted.begin() + static_cast<std::ptrdiff_t>(start),
               dotted.begin() + static_cast<std::ptrdiff_t>(dot));
    start = dot + 1;
  }
  out.push_back(0);
}

// Type, class, ttl, rdlength and rdata after an owner name the caller wrote.
inline void appendRecordTail(Buf& out, std::uint16_t type, std::uint32_t ttl, const Buf& rdata,
                             std::uint16_t klass = kClassIn) {
  ByteWriter w(out);
  w.u16(type);
  w.u16(klass);
  w.u32(ttl);
  w.u16(static_cast<std::uint16_t>(rdata.size()));
  w.bytes(rdata);
}

// "name ip ttl" lines, sorted, so expectations read like a zone file.
inline std::vector<std::string> lines(const Answer& a) {
  std::vector<std::string> out;
  for (const auto& m : a.mappings)
    out.push_back(m.name + " " + m.ip.str() + " " + std::to_string(m.ttl));
  std::sort(out.begin(), out.end());
  return out;
}

inline ResponseSpec response(std::string qname, std::uint16_t qtype = kTypeA) {
  ResponseSpec spec;
  spec.qname = std::move(qname);
  spec.qtype = qtype;
  return spec;
}

}  // namespace cw::dns::testing
