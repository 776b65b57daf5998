// parseResponse and TcpFramer on arbitrary bytes: must never read outside the input, and what
// parses must keep the Answer's promises (the chain starts at the question, every mapping's
// name is on the chain, host-name bytes only, limits and no duplicates). The same bytes are
// also fed to a TcpFramer as one stream cut in two segments (where: the last byte decides).
// And read as a cell's query (parseQuery): a query that parses has a host name, its REFUSED
// answer reads back as a response about the same name, and without its EDNS options it parses
// to the same question.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "dns/dns.h"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

bool hostName(const std::string& name) {
  if (name.empty() || name.size() > 253 || name.front() == '.' || name.back() == '.') return false;
  for (char c : name) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return name.find("..") == std::string::npos;
}

void parse(cw::Bytes message) {
  auto r = cw::dns::parseResponse(message);
  if (!r) {
    check(std::string_view(cw::dns::parseErrorName(r.error())) != "unknown");  // a known name
    return;
  }
  const cw::dns::Answer& a = *r;
  check(!a.chain.empty() && a.chain.size() <= cw::dns::kMaxChainLength);
  check(a.chain[0] == a.qname);
  std::set<std::string> chain;
  for (const auto& n : a.chain) {
    check(hostName(n));
    check(chain.insert(n).second);  // no loops
  }
  check(a.mappings.size() <= cw::dns::kMaxMappings);
  check(a.rcode == 0 || (a.mappings.empty() && a.chain.size() == 1));
  std::set<std::pair<std::string, cw::IpAddr>> seen;
  for (const auto& m : a.mappings) {
    check(chain.count(m.name) == 1);
    check(seen.emplace(m.name, m.ip).second);
    check(m.ttl <= 0x7fffffff);
  }
}

void query(cw::Bytes message) {
  auto q = cw::dns::parseQuery(message);
  if (!q) {
    check(std::string_view(cw::dns::parseErrorName(q.error())) != "unknown");
    const auto refused = cw::dns::refusedAnswer(message, nullptr);
    check(refused.empty() == (message.size() < cw::dns::kHeaderSize));
    return;
  }
  check(hostName(q->qname));
  check(q->question_end <= message.size());
  const auto refused = cw::dns::refusedAnswer(message, &*q);
  auto a = cw::dns::parseResponse(refused);
  check(a.has_value() && a->qname == q->qname && a->rcode == cw::dns::kRcodeRefused &&
        a->id == q->id && a->mappings.empty());
  const auto bare = cw::dns::withoutEdnsOptions(message, *q);
  auto again = cw::dns::parseQuery(bare);
  check(again.has_value() && again->qname == q->qname && again->qtype == q->qtype &&
        again->opt_rdata_size == 0 && bare.size() <= message.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const cw::Bytes input(data, size);
  parse(input);
  query(input);

  const std::size_t split = size == 0 ? 0 : std::size_t{data[size - 1]} * size / 256;
  cw::dns::TcpFramer framer(1000);
  for (const auto& m : framer.feed(1000, input.first(split))) parse(m);
  check(framer.buffered() <= 0xffff + 2);
  for (const auto& m : framer.feed(static_cast<std::uint32_t>(1000 + split), input.subspan(split)))
    parse(m);
  check(framer.buffered() <= 0xffff + 2);
  check(!framer.lost());
  return 0;
}
