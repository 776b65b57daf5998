// Fuzzes the script engine (script/engine.h) with script text: whatever a script says, loading
// it and handing it packets and timers must neither crash nor hang cellwalld, and a script that
// fails is disabled, not half-running. Small limits keep each input fast; the seed corpus is
// the shipped scripts and the API's examples, so mutations reach the verbs' argument checks.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "script/engine.h"

namespace {

std::string synFrame(std::uint16_t dport, std::uint8_t flags) {
  std::string f(54, '\0');
  f[12] = 0x08;
  f[14] = 0x45;
  f[14 + 9] = 6;
  f[36] = static_cast<char>(dport >> 8);
  f[37] = static_cast<char>(dport);
  f[47] = static_cast<char>(flags);
  return f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  cw::script::Limits limits;
  limits.memory_bytes = std::size_t{1} << 20;
  limits.instructions_per_call = 20000;
  auto s = cw::script::Script::load("fuzz.lua", text, limits, {{"ports", std::int64_t{3}}, {"window", 0.5}});
  if (!s) return 0;
  (void)(*s)->takeLoadEffects();
  for (int i = 0; i < 4; ++i) {
    const std::string frame = synFrame(static_cast<std::uint16_t>(20 + i), i == 3 ? 0 : 0x02);
    cw::script::Packet p;
    p.frame = frame;
    p.cell = 1;
    p.app = "app";
    p.ip_src = 0x0ac80002;
    p.ip_dst = 0xc0000201;
    p.port_src = 40000;
    p.port_dst = static_cast<std::uint16_t>(20 + i);
    p.proto = 6;
    p.tcp_flags = i == 3 ? 0 : 0x02;
    p.direction = i % 2 == 0 ? "out" : "in";
    cw::script::Effects e;
    auto v = (*s)->onPacket(p, e);
    if ((*s)->disabled() && v != cw::script::Verdict::kContinue) std::abort();  // a failed call decides nothing
    for (const auto& f : e.flows)
      if (f.priority > 999 || f.match.src_len > 32 || f.match.dst_len > 32) std::abort();
    cw::script::Effects ie;
    (void)(*s)->onInspect(p, ie);
  }
  cw::script::Effects te;
  (void)(*s)->runTimers(cw::script::monotonicMs() + 100000, te);
  if ((*s)->memoryUsed() > limits.memory_bytes) std::abort();
  return 0;
}
