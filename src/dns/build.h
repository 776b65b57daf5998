// Builds DNS messages for tests, benchmarks and end-to-end helpers: responses with CNAME, A,
// AAAA, SVCB/HTTPS or raw records, queries, and DNS-over-TCP framing.
//
// Inputs are trusted (our own code): names are dotted text written label by label as given
// (case kept, a trailing dot optional); a label over 63 bytes or a name over 255 asserts.
// With `compress`, owner names and CNAME targets reuse earlier names' suffixes through
// backward pointers (RFC 1035 4.1.4); SVCB TargetNames are never compressed (RFC 9460 2.2).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/net.h"
#include "dns/dns.h"

namespace cw::dns {

struct RecordSpec {
  std::string name;
  std::uint16_t type = kTypeA;
  std::uint16_t klass = kClassIn;
  std::uint32_t ttl = 300;
  std::string target;               // CNAME only: written as a (compressible) name
  std::vector<std::uint8_t> rdata;  // every other type: written as is
};

struct SvcbSpec {
  std::uint16_t priority = 1;  // 0: AliasMode
  std::string target = ".";
  std::vector<std::string> alpn;  // key 1
  std::uint16_t port = 0;         // key 3, when non-zero
  std::vector<Ip4> ipv4hint;      // key 4
  std::vector<Ip6> ipv6hint;      // key 6
};

RecordSpec aRecord(std::string name, Ip4 ip, std::uint32_t ttl = 300);
RecordSpec aaaaRecord(std::string name, const Ip6& ip, std::uint32_t ttl = 300);
RecordSpec cnameRecord(std::string name, std::string target, std::uint32_t ttl = 300);
// type is kTypeHttps or kTypeSvcb.
RecordSpec svcbRecord(std::string name, const SvcbSpec& svcb, std::uint16_t type = kTypeHttps,
                      std::uint32_t ttl = 300);
// SVCB/HTTPS rdata in wire form (what dnsmasq's --dns-rr takes as hex).
std::vector<std::uint8_t> svcbRdata(const SvcbSpec& svcb);

struct ResponseSpec {
  std::uint16_t id = 0x1234;
  std::string qname;
  std::uint16_t qtype = kTypeA;
  std::uint16_t qclass = kClassIn;
  std::uint8_t rcode = kRcodeNoError;
  std::uint8_t opcode = 0;
  bool response = true;    // QR
  bool truncated = false;  // TC
  bool compress = true;
  std::vector<RecordSpec> answers, authority, additional;
};

std::vector<std::uint8_t> buildResponse(const ResponseSpec& spec);
// A recursive query (RD=1) for one name.
std::vector<std::uint8_t> buildQuery(std::uint16_t id, const std::string& qname,
                                     std::uint16_t qtype);
// The message with its 2-byte DNS-over-TCP length prefix.
std::vector<std::uint8_t> frameTcp(Bytes message);

}  // namespace cw::dns
