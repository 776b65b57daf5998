// Engine::onFrame throughput on one core (issue's target: keep up with 1 Gbit/s of a cell's
// egress). 100 TCP connections, handshakes then 1448-byte segments sent round-robin (so every
// frame switches flow), payload text made of common words (so short contents do match now and
// then), every byte inspected (stream_depth unlimited). Rule sets:
//   Empty        - no rules: parsing, flow table and reassembly only
//   Shipped      - rules/ids/cellwall.rules
//   Random/N     - the shipped rules plus N rules of one random 10-letter content (rarely
//                  match: the usual case of specific signatures)
//   Words/N      - the shipped rules plus N rules of two common words with distance/within:
//                  the worst case, every word of the traffic is some rule's content
// Reports bytes_per_second (whole frames) and Gbit/s.
// Run: taskset -c 0 build/release/bench/ids/cw-ids-bench
#include <benchmark/benchmark.h>

#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "ids/engine.h"
#include "packet/builder.h"
#include "packet/frame.h"

namespace {

using namespace cw;
using namespace cw::ids;

constexpr int kFlows = 100;
constexpr int kSegments = 100;  // per flow: 100 x 100 x 1448 B = 14.5 MB of payload
constexpr std::size_t kSegmentSize = 1448;

const char* kWords[] = {"the",      "user",        "admin",   "password", "GET",     "POST",
                        "HTTP/1.1", "Host:",       "json",    "data",     "value",   "id",
                        "name",     "token",       "session", "cookie",   "content", "type",
                        "length",   "application", "text",    "html",     "image",   "upload",
                        "file",     "path",        "query",   "select",   "from",    "where",
                        "and",      "key",         "secret",  "login",    "logout",  "status",
                        "200",      "404",         "error"};

std::string shippedRules() {
  std::ifstream in(std::string(CW_SOURCE_DIR) + "/rules/ids/cellwall.rules");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// n rules of one random 10-letter content (a third nocase): they almost never match.
std::string randomRules(int n) {
  std::mt19937 rng(42);
  std::string out;
  for (int i = 0; i < n; ++i) {
    const std::string sid = std::to_string(1000000 + i);
    std::string c;
    for (int k = 0; k < 10; ++k) c.push_back(static_cast<char>('a' + rng() % 26));
    out += "alert tcp any any -> any any (msg:\"random " + sid + "\"; content:\"" + c + "\";" +
           (i % 3 == 0 ? " nocase;" : "") + " sid:" + sid + ";)\n";
  }
  return out;
}

// n rules of two dictionary words, the second within 16 bytes after the first: every word of
// the traffic matches some rule's content, so every few bytes run the match callback.
std::string wordRules(int n) {
  std::mt19937 rng(43);
  std::string out;
  const auto words = std::size(kWords);
  for (int i = 0; i < n; ++i) {
    const std::string sid = std::to_string(2000000 + i);
    out += "alert tcp any any -> any any (msg:\"words " + sid + "\"; content:\"" +
           kWords[rng() % words] + "\"; content:\"" + kWords[rng() % words] +
           "\"; distance:1; within:16; sid:" + sid + ";)\n";
  }
  return out;
}

struct Traffic {
  std::vector<std::vector<std::uint8_t>> frames;
  std::uint64_t bytes = 0;
  Traffic() {
    std::mt19937 rng(7);
    std::string text;
    while (text.size() < 1 << 20) {
      text += kWords[rng() % std::size(kWords)];
      text += rng() % 8 == 0 ? "\r\n" : " ";
    }
    const Ip4 server{0x5db8d822};
    auto client = [](int f) { return Ip4{0x0a000000u + static_cast<std::uint32_t>(f) + 2}; };
    for (int f = 0; f < kFlows; ++f) {
      const auto port = static_cast<std::uint16_t>(40000 + f);
      frames.push_back(packet::buildTcp4({}, client(f), server, port, 443, packet::kTcpSyn, 999));
      frames.push_back(packet::buildTcp4({}, server, client(f), 443, port,
                                         packet::kTcpSyn | packet::kTcpAck, 0, 1000));
      frames.push_back(
          packet::buildTcp4({}, client(f), server, port, 443, packet::kTcpAck, 1000, 1));
    }
    for (int s = 0; s < kSegments; ++s) {
      for (int f = 0; f < kFlows; ++f) {
        const std::size_t at =
            (static_cast<std::size_t>(s) * 7919 + static_cast<std::size_t>(f) * 104729) %
            (text.size() - kSegmentSize);
        const Bytes payload(reinterpret_cast<const std::uint8_t*>(text.data()) + at, kSegmentSize);
        const auto seq =
            static_cast<std::uint32_t>(1000 + static_cast<std::size_t>(s) * kSegmentSize);
        frames.push_back(packet::buildTcp4({}, client(f), server,
                                           static_cast<std::uint16_t>(40000 + f), 443,
                                           packet::kTcpAck | packet::kTcpPsh, seq, 1, payload));
      }
    }
    for (const auto& fr : frames) bytes += fr.size();
  }
};

const Traffic& traffic() {
  static const Traffic t;
  return t;
}

void run(benchmark::State& state, const std::string& rules_text) {
  LoadReport report;
  auto rules = compileRules(rules_text, defaultVariables(), report);
  if (!rules) {
    state.SkipWithError(rules.error().message.c_str());
    return;
  }
  Limits limits;
  limits.stream_depth = UINT64_MAX;  // inspect everything: the worst case
  const Traffic& t = traffic();
  std::vector<Alert> alerts;
  std::uint64_t bytes = 0, alerts_total = 0, now = 0;
  for (auto _ : state) {
    // The traffic is one pass of all connections; each pass needs a fresh engine, or its
    // segments would be retransmissions.
    Engine engine(*rules, limits);
    for (const auto& fr : t.frames) {
      engine.onFrame(fr, ++now, alerts);
    }
    alerts_total += alerts.size();
    alerts.clear();
    bytes += t.bytes;
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
  state.counters["Gbit/s"] =
      benchmark::Counter(static_cast<double>(bytes) * 8 / 1e9, benchmark::Counter::kIsRate);
  state.counters["rules"] = static_cast<double>(report.loaded);
  state.counters["alerts/pass"] =
      static_cast<double>(alerts_total) /
      static_cast<double>(std::max<std::int64_t>(1, state.iterations()));
}

void Empty(benchmark::State& state) {
  run(state, "");
}
void Shipped(benchmark::State& state) {
  run(state, shippedRules());
}
void Random(benchmark::State& state) {
  run(state, shippedRules() + randomRules(static_cast<int>(state.range(0))));
}
void Words(benchmark::State& state) {
  run(state, shippedRules() + wordRules(static_cast<int>(state.range(0))));
}

BENCHMARK(Empty)->Unit(benchmark::kMillisecond);
BENCHMARK(Shipped)->Unit(benchmark::kMillisecond);
BENCHMARK(Random)->Arg(100)->Arg(1000)->Arg(5000)->Unit(benchmark::kMillisecond);
BENCHMARK(Words)->Arg(10)->Arg(100)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
