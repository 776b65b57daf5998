// Fuzzes parsePolicy on arbitrary text. Whatever parses must export to text that parses back
// to the same policy and exports byte-identically (the canonical form), and each rule must
// survive exportRule → parseRule. The policy is then compiled into a Matcher and asked a few
// questions (with and without resolved names, outbound and inbound, with a filter); every
// verdict is checked against the rule it names and against explain().
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "policy/policy.h"

namespace {

using namespace cw::policy;

bool sameModuloIds(const AppPolicy& a, const AppPolicy& b) {
  if (a.app != b.app || a.default_action != b.default_action || a.env != b.env ||
      a.clean_env != b.clean_env || a.pass_env != b.pass_env || a.rules.size() != b.rules.size())
    return false;
  for (std::size_t i = 0; i < a.rules.size(); ++i) {
    const Rule& x = a.rules[i];
    const Rule& y = b.rules[i];
    if (x.action != y.action || !(x.match == y.match) || !(x.lifetime == y.lifetime) ||
        x.comment != y.comment)
      return false;
  }
  return true;
}

void checkExport(const AppPolicy& p) {
  std::string once = exportPolicy(p);
  auto again = parsePolicy(once, "export.toml", 1);
  if (!again || !sameModuloIds(p, *again) || exportPolicy(*again) != once) std::abort();
  for (const Rule& r : p.rules) {
    std::string text = exportRule(r);
    auto back = parseRule(text, "store", r.id);
    if (!back || exportRule(*back) != text) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = parsePolicy(text, "fuzz.toml", 1);
  if (!parsed) {
    const PolicyError& e = parsed.error();
    if (e.reason.empty() || e.str().empty()) std::abort();
    return 0;
  }
  checkExport(*parsed);
  Matcher m(std::move(parsed).value());
  static const char* kAddrs[] = {"10.0.0.1", "10.99.0.2", "192.168.1.1", "8.8.8.8",
                                 "2001:db8::1", "::1", "fe80::1", "0.0.0.0"};
  static const Protocol kProtos[] = {Protocol::kTcp, Protocol::kUdp, Protocol::kIcmp,
                                     Protocol::kAny};
  static const std::uint16_t kPorts[] = {0, 22, 53, 80, 443, 8080, 65535};
  static const std::string_view kNames[] = {"a.example", "x.a.example", "API.Example.org.",
                                            "example.org", "b.c"};
  // Skips every rule with a connection limit, as if all were used up.
  auto unlimited = [](const Rule& r) { return r.lifetime.connections == 0; };
  const RuleFilter filter = RuleFilter::of(unlimited);
  int n = 0;
  for (const char* a : kAddrs) {
    for (Protocol p : kProtos) {
      for (std::uint16_t port : kPorts) {
        for (int variant = 0; variant < 4; ++variant) {
          ConnKey k(p, variant == 3 ? Direction::kInbound : Direction::kOutbound,
                    *cw::IpAddr::parse(a), port);
          if (variant >= 1) k.names = kNames;
          RuleFilter f = variant == 2 ? filter : RuleFilter{};
          Verdict v = m.decide(k, f);
          if (v.rule != nullptr) {
            if (v.rule < m.policy().rules.data() ||
                v.rule >= m.policy().rules.data() + m.policy().rules.size())
              std::abort();
            if (v.action != v.rule->action) std::abort();
            if (v.rule->match.direction != k.direction) std::abort();
            if (!f(*v.rule)) std::abort();
          }
          if (++n % 7 == 0 && m.explain(k, f).verdict.rule != v.rule) std::abort();
        }
      }
    }
  }
  return 0;
}
