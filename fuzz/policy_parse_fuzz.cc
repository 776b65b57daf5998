// Fuzzes parsePolicy on arbitrary text; whatever parses is compiled into a Matcher and asked a
// few questions, and every verdict is checked against the rule it names.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "policy/policy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cw::policy;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = parsePolicy(text, "fuzz.toml", 1);
  if (!parsed) {
    const PolicyError& e = parsed.error();
    if (e.reason.empty() || e.str().empty()) std::abort();
    return 0;
  }
  Matcher m(std::move(parsed).value());
  static const char* kAddrs[] = {"10.0.0.1", "10.99.0.2", "192.168.1.1", "8.8.8.8",
                                 "2001:db8::1", "::1", "fe80::1", "0.0.0.0"};
  static const Protocol kProtos[] = {Protocol::kTcp, Protocol::kUdp, Protocol::kIcmp,
                                     Protocol::kAny};
  static const std::uint16_t kPorts[] = {0, 22, 53, 80, 443, 8080, 65535};
  for (const char* a : kAddrs) {
    for (Protocol p : kProtos) {
      for (std::uint16_t port : kPorts) {
        ConnKey k;
        k.protocol = p;
        k.remote = *cw::IpAddr::parse(a);
        k.remote_port = port;
        Verdict v = m.decide(k);
        if (v.rule != nullptr) {
          if (v.rule < m.policy().rules.data() ||
              v.rule >= m.policy().rules.data() + m.policy().rules.size())
            std::abort();
          if (v.action != v.rule->action) std::abort();
        }
      }
    }
  }
  return 0;
}
