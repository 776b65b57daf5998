// Fuzzes the IDS rule parser on arbitrary text: every skipped rule must name a line of the
// input and say why; every loaded rule must have a sid and non-empty patterns. Small inputs
// (where Hyperscan's compile stays cheap) are also compiled, and an Engine is fed a TCP
// connection and a UDP datagram carrying the input itself, so the matcher runs on whatever
// the rules turned out to be.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "ids/engine.h"
#include "ids/rules.h"
#include "packet/builder.h"
#include "packet/frame.h"

using namespace cw;
using namespace cw::ids;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  LoadReport report;
  std::vector<Rule> rules = parseRules(text, defaultVariables(), report);
  const auto lines = static_cast<int>(std::count(text.begin(), text.end(), '\n')) + 1;
  for (const Skipped& s : report.skipped)
    if (s.line < 1 || s.line > lines || s.reason.empty()) std::abort();
  for (const Rule& r : rules) {
    if (r.sid == 0 || r.line < 1 || r.line > lines) std::abort();
    for (const Pattern& p : r.patterns)
      if (p.bytes.empty()) std::abort();
  }
  if (size > 300 || rules.size() > 4) return 0;

  auto compiled = compileRules(std::move(rules), report);
  if (!compiled) return 0;  // a Hyperscan failure not about one rule: allowed, said in the error
  if (report.loaded != (*compiled)->size()) std::abort();
  Limits limits;
  limits.stream_depth = 256;
  Engine engine(*compiled, limits);
  std::vector<Alert> alerts;
  const Ip4 c{0x0a000002}, s{0x0a000001};
  const Bytes payload(data, size);
  std::uint64_t now = 1;
  engine.onFrame(packet::buildTcp4({}, c, s, 40000, 80, packet::kTcpSyn, 0), now++, alerts);
  engine.onFrame(packet::buildTcp4({}, s, c, 80, 40000, packet::kTcpSyn | packet::kTcpAck, 0, 1),
                 now++, alerts);
  engine.onFrame(
      packet::buildTcp4({}, c, s, 40000, 80, packet::kTcpAck, 1, 1, payload.first(size / 2)), now++,
      alerts);
  engine.onFrame(
      packet::buildTcp4({}, c, s, 40000, 80, packet::kTcpAck | packet::kTcpPsh,
                        static_cast<std::uint32_t>(1 + size / 2), 1, payload.subspan(size / 2)),
      now++, alerts);
  engine.onFrame(packet::buildUdp4({}, c, s, 5353, 53, payload), now++, alerts);
  for (const Alert& a : alerts)
    if (a.sid == 0) std::abort();
  if (engine.stats().alerts != alerts.size()) std::abort();
  return 0;
}
