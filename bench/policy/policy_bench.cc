// One policy decision with big policies and a big name table: decideWithPolicy (what the packet
// path calls per new connection) with 1, 1,000 and 100,000 rules while the cell's name table
// holds 1,000,000 (name, address) entries; then the whole Decider::decide; and, printed before
// the timings, heap bytes per rule (parsed AppPolicy and Matcher index apart) and per DNS entry.
// Run and results: bench/policy/README.md.
//
// The world (all deterministic):
//  - Name table: 500,000 addresses (9 in 10 IPv4 over 1-222.x.y.z, 1 in 10 IPv6), each with
//    the name the cell asked for and its CNAME target, as snooping records a chain:
//    k % 3 == 0 "host<k>.example.com", 1 "api<k%7>.svc<k>.example.net", 2 "www.site<k>.org",
//    plus "e<k>.dscb.akamaiedge.net". 1,000,000 entries, 1,000,000 distinct names.
//  - Policy of N rules: N - 1 fillers of a realistic mix plus one target rule in the middle
//    (so its id is real and neither first nor last). Fillers, by f % 10: 0-3 and 9 exact hosts
//    ("host<3f>.example.com", every 20th with a second host), 4-5 wildcards
//    ("*.svc<3f+1>.example.net"), 6-7 IPv4 prefixes /16../32 (3 in 4 around addresses the
//    cell resolved, 1 in 4 anywhere; every 20th with a second prefix), 8 IPv6 /48../128; every
//    1,000th an any-address rule with ports only. Ports (none, 443, 80, [80, 443], "8000-8999",
//    [53, "5000-5100"], 22), proto (any, tcp, udp) and action (allow; deny 1 in 5; reject
//    1 in 13) cycle. So host rules name addresses the table really holds.
//  - Connections: TCP to port 443 of one of the table's addresses.
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <array>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "decide/decider.h"
#include "packet/builder.h"
#include "packet/frame.h"
#include "policy/policy.h"

namespace {

using namespace cw;
using decide::CompiledPolicy;
using decide::RuleLimit;

constexpr std::int64_t kMonoNow = 1'000'000;
constexpr std::int64_t kUnixNow = 1'767'225'600'000;  // 2026-01-01T00:00:00Z
constexpr std::uint32_t kAddresses = 500'000;         // two names each
constexpr std::uint16_t kPort = 443;

// Concatenation without `"literal" + std::string`, which GCC 12 -O3 flags (-Wrestrict, a
// false positive).
template <class... A>
std::string cat(const A&... parts) {
  std::string s;
  ((s += parts), ...);
  return s;
}

// Distinct addresses for distinct k.
IpAddr addressOf(std::uint32_t k) {
  if (k % 10 == 9) {
    Ip6 a = *Ip6::parse("2001:db8::");
    a.b[4] = static_cast<std::uint8_t>(k * 7 >> 8);
    a.b[5] = static_cast<std::uint8_t>(k * 7);
    for (int i = 0; i < 4; ++i) a.b[static_cast<std::size_t>(12 + i)] = static_cast<std::uint8_t>(k >> (24 - 8 * i));
    return IpAddr(a);
  }
  std::uint32_t top = 1 + k % 222;
  std::uint32_t low = ((k / 222) * 40503u) & 0xffffffu;  // odd multiplier: a bijection mod 2^24
  return IpAddr(Ip4{top << 24 | low});
}

std::string primaryName(std::uint32_t k) {
  switch (k % 3) {
    case 0: return cat("host", std::to_string(k), ".example.com");
    case 1: return cat("api", std::to_string(k % 7), ".svc", std::to_string(k), ".example.net");
    default: return cat("www.site", std::to_string(k), ".org");
  }
}
std::string cdnName(std::uint32_t k) { return cat("e", std::to_string(k), ".dscb.akamaiedge.net"); }

names::Limits tableLimits() {
  names::Limits l;
  l.max_entries = 2'000'000;
  l.hash_seed = 42;
  return l;
}

void fillNames(names::NameTable& t) {
  for (std::uint32_t k = 0; k < kAddresses; ++k) {
    IpAddr a = addressOf(k);
    t.record(cdnName(k), a, 300, kMonoNow);
    t.record(primaryName(k), a, 300, kMonoNow);
  }
}

// The prefix of `a` of `len` bits in its own family, as policy text ("1.2.0.0/16").
std::string prefixText(const IpAddr& a, unsigned len) {
  if (a.is_v4()) {
    std::uint32_t mask = len == 0 ? 0 : ~0u << (32 - len);
    return cat(Ip4{a.v4().v & mask}.str(), "/", std::to_string(len));
  }
  Ip6 p = a.v6();
  for (unsigned bit = len; bit < 128; ++bit) p.b[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
  return cat(p.str(), "/", std::to_string(len));
}

const char* kPortsText[] = {"", "443", "80", "[80, 443]", "\"8000-8999\"", "[53, \"5000-5100\"]", "22"};
const char* kProtoText[] = {"", "tcp", "udp"};

void appendRule(std::string& out, unsigned action, const char* proto, const std::string& dest,
                const char* ports) {
  out += action == 1 ? "[[deny]]\n" : action == 2 ? "[[rule]]\naction = \"reject\"\n" : "[[allow]]\n";
  if (*proto != 0) out += cat("proto = \"", proto, "\"\n");
  out += dest;
  if (*ports != 0) out += cat("ports = ", ports, "\n");
}

void appendFiller(std::string& out, std::uint32_t f) {
  unsigned action = f % 13 == 0 ? 2 : f % 5 == 0 ? 1 : 0;
  const char* proto = kProtoText[f % 3];
  const char* ports = kPortsText[f % 7];
  std::string dest;
  if (f % 1000 == 999) {
    dest.clear();  // any address, ports only
    ports = "[53, \"5000-5100\"]";
  } else {
    switch (f % 10) {
      case 4:
      case 5: dest = cat("hosts = \"*.svc", std::to_string(3 * f + 1), ".example.net\"\n"); break;
      case 6:
      case 7: {
        unsigned len = 16 + f % 17;
        std::uint32_t h = f * 2654435761u;
        IpAddr base = f % 4 == 0 ? IpAddr(Ip4{(1 + h % 222) << 24 | (h >> 8 & 0xffffff)})
                                 : addressOf((3 * f + 2) % kAddresses / 10 * 10 + 2);
        dest = cat("to = \"", prefixText(base, len), "\"\n");
        if (f % 20 == 7)
          dest = cat("to = [\"", prefixText(base, len), "\", \"",
                     prefixText(addressOf(f % kAddresses / 10 * 10 + 2), 24), "\"]\n");
        break;
      }
      case 8: {
        static constexpr unsigned kLens[] = {48, 56, 64, 128};
        dest = cat("to = \"", prefixText(addressOf(f % 50'000 * 10 + 9), kLens[f / 10 % 4]), "\"\n");
        break;
      }
      default:
        dest = cat("hosts = \"host", std::to_string(3 * f), ".example.com\"\n");
        if (f % 20 == 3)
          dest = cat("hosts = [\"host", std::to_string(3 * f), ".example.com\", \"host", std::to_string(3 * f), ".example.org\"]\n");
    }
  }
  appendRule(out, action, proto, dest, ports);
}

// What the probe connection of each case meets. Fillers use k < 300,000 for names (3f with
// f < 100,000), so the targets' k are theirs alone.
enum class Case { kExact, kWildcard, kAddress, kNone };
constexpr std::uint32_t kProbeK[] = {480000, 480001, 480002, 480005};

std::string targetRule(Case c) {
  std::string out;
  switch (c) {
    case Case::kExact: appendRule(out, 0, "tcp", "hosts = \"host480000.example.com\"\n", "443"); break;
    case Case::kWildcard: appendRule(out, 0, "tcp", "hosts = \"*.svc480001.example.net\"\n", "443"); break;
    case Case::kAddress:
      appendRule(out, 0, "tcp", cat("to = \"", prefixText(addressOf(480002), 24), "\"\n"), "443");
      break;
    case Case::kNone:  // a rule that is there but not for this connection
      appendRule(out, 0, "tcp", "hosts = \"host480003.example.com\"\n", "443");
      break;
  }
  return out;
}

std::uint32_t targetPosition(std::uint32_t rules) { return (rules - 1) / 2; }

std::string policyText(Case c, std::uint32_t rules) {
  std::string out = "default = \"deny\"\n";
  std::uint32_t mid = targetPosition(rules);
  for (std::uint32_t i = 0; i < rules; ++i) {
    if (i == mid) out += targetRule(c);
    else appendFiller(out, i < mid ? i : i - 1);
  }
  return out;
}

std::shared_ptr<const policy::Matcher> compile(Case c, std::uint32_t rules) {
  auto p = policy::parsePolicy(policyText(c, rules), "bench.toml");
  if (!p) {
    std::fprintf(stderr, "bench policy does not parse: %s\n", p.error().str().c_str());
    std::abort();
  }
  return std::make_shared<const policy::Matcher>(std::move(p.value()));
}

// Lifetimes as the daemon wraps them: CompiledPolicy::limits by rule id.
enum class Limit { kNone, kUntil, kCount };

struct Built {
  std::shared_ptr<const CompiledPolicy> policy;
  std::uint32_t target_id = 0;  // the rule the probe must hit; 0: the default
};

const Built& built(Case c, std::uint32_t rules, Limit limit = Limit::kNone) {
  static std::map<std::pair<int, std::uint32_t>, std::shared_ptr<const policy::Matcher>> matchers;
  static std::map<std::tuple<int, std::uint32_t, int>, Built> cache;
  auto key = std::make_tuple(static_cast<int>(c), rules, static_cast<int>(limit));
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  auto& m = matchers[{static_cast<int>(c), rules}];
  if (!m) m = compile(c, rules);
  auto cp = std::make_shared<CompiledPolicy>();
  cp->matcher = m;
  std::uint32_t target = targetPosition(rules) + 1;  // ids start at 1
  if (limit != Limit::kNone) {
    // The target plus every 20th rule carry a lifetime, so the filter's map is not trivially
    // small: temporary rules are common in a big policy.
    for (const auto& r : m->policy().rules) {
      if (r.id != target && r.id % 20 != 0) continue;
      auto l = std::make_shared<RuleLimit>();
      l->until_ms = kUnixNow + 86'400'000;  // ends tomorrow
      if (limit == Limit::kCount && r.id == target) {
        l->until_ms = 0;
        l->max = 0xffffffffu;  // never runs out within a run
      }
      cp->limits[r.id] = std::move(l);
    }
  }
  Built b{std::move(cp), c == Case::kNone ? 0 : target};
  return cache.emplace(key, std::move(b)).first->second;
}

// The cell's runtime, shared by every benchmark: built (and measured) once in main.
std::shared_ptr<decide::CellRuntime>& runtime() {
  static std::shared_ptr<decide::CellRuntime> rt;
  return rt;
}

constexpr decide::Now kNow{kMonoNow, kUnixNow};

void runDecide(benchmark::State& state, Case c, Limit limit) {
  auto rules = static_cast<std::uint32_t>(state.range(0));
  const Built& b = built(c, rules, limit);
  const decide::CellRuntime* rt = runtime().get();
  policy::ConnKey key(policy::Protocol::kTcp, policy::Direction::kOutbound,
                      addressOf(kProbeK[static_cast<int>(c)]), kPort);
  auto first = decide::decideWithPolicy(*b.policy, key, kNow, rt, nullptr);
  std::uint32_t got = first.verdict.rule != nullptr ? first.verdict.rule->id : 0;
  if (got != b.target_id) {
    state.SkipWithError(cat("probe hit rule ", std::to_string(got), ", not ", std::to_string(b.target_id)).c_str());
    return;
  }
  for (auto _ : state) {
    auto o = decide::decideWithPolicy(*b.policy, key, kNow, rt, nullptr);
    benchmark::DoNotOptimize(o);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

void BM_ExactHost(benchmark::State& s) { runDecide(s, Case::kExact, Limit::kNone); }
void BM_WildcardHost(benchmark::State& s) { runDecide(s, Case::kWildcard, Limit::kNone); }
void BM_AddressOnly(benchmark::State& s) { runDecide(s, Case::kAddress, Limit::kNone); }
void BM_NoMatch(benchmark::State& s) { runDecide(s, Case::kNone, Limit::kNone); }
void BM_ExactHostUntil(benchmark::State& s) { runDecide(s, Case::kExact, Limit::kUntil); }
void BM_ExactHostCount(benchmark::State& s) { runDecide(s, Case::kExact, Limit::kCount); }
BENCHMARK(BM_ExactHost)->Arg(1)->Arg(1000)->Arg(100000);
BENCHMARK(BM_WildcardHost)->Arg(1)->Arg(1000)->Arg(100000);
BENCHMARK(BM_AddressOnly)->Arg(1)->Arg(1000)->Arg(100000);
BENCHMARK(BM_NoMatch)->Arg(1)->Arg(1000)->Arg(100000);
BENCHMARK(BM_ExactHostUntil)->Arg(1)->Arg(1000)->Arg(100000);
BENCHMARK(BM_ExactHostCount)->Arg(1)->Arg(1000)->Arg(100000);

// The same decision for a different remote address each time: 65,536 addresses drawn from the
// whole name table, so the name table and, with many rules, the matcher are mostly out of
// cache, as for a cell that talks to many hosts. "matched" is the share a rule decided.
void BM_SpreadAddresses(benchmark::State& state) {
  auto rules = static_cast<std::uint32_t>(state.range(0));
  const Built& b = built(Case::kExact, rules);
  const decide::CellRuntime* rt = runtime().get();
  constexpr std::size_t kProbes = 1 << 16;
  std::vector<policy::ConnKey> keys;
  std::mt19937 rng(7);
  std::size_t matched = 0;
  for (std::size_t i = 0; i < kProbes; ++i) {
    std::uint32_t k = std::uniform_int_distribution<std::uint32_t>(0, kAddresses - 1)(rng);
    keys.emplace_back(policy::Protocol::kTcp, policy::Direction::kOutbound, addressOf(k), kPort);
    matched += decide::decideWithPolicy(*b.policy, keys.back(), kNow, rt, nullptr).verdict.rule != nullptr;
  }
  std::size_t i = 0;
  for (auto _ : state) {
    auto o = decide::decideWithPolicy(*b.policy, keys[i++ & (kProbes - 1)], kNow, rt, nullptr);
    benchmark::DoNotOptimize(o);
  }
  state.counters["matched"] = static_cast<double>(matched) / kProbes;
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_SpreadAddresses)->Arg(1)->Arg(1000)->Arg(100000);

// BM_SpreadAddresses split in its two halves, to see where its time goes: the name table
// lookup alone (under the lock, as decideWithPolicy does it) ...
void BM_SpreadNamesOnly(benchmark::State& state) {
  const decide::CellRuntime& rt = *runtime();
  constexpr std::size_t kProbes = 1 << 16;
  std::vector<IpAddr> addrs;
  std::mt19937 rng(7);
  for (std::size_t i = 0; i < kProbes; ++i)
    addrs.push_back(addressOf(std::uniform_int_distribution<std::uint32_t>(0, kAddresses - 1)(rng)));
  std::array<std::string_view, names::kMaxNamesPerIp> buf;
  std::size_t i = 0;
  for (auto _ : state) {
    std::lock_guard lock(rt.mu);
    benchmark::DoNotOptimize(rt.names.names(addrs[i++ & (kProbes - 1)], kMonoNow, buf));
    benchmark::DoNotOptimize(buf);
  }
}
BENCHMARK(BM_SpreadNamesOnly);

// ... and the matcher alone, given the same addresses with their names already in hand
// (copied out of the table, so no name-table memory is touched).
void BM_SpreadMatcherOnly(benchmark::State& state) {
  auto rules = static_cast<std::uint32_t>(state.range(0));
  const Built& b = built(Case::kExact, rules);
  constexpr std::size_t kProbes = 1 << 16;
  std::vector<std::array<std::string, 2>> owned(kProbes);
  std::vector<std::array<std::string_view, 2>> views(kProbes);
  std::vector<policy::ConnKey> keys;
  std::mt19937 rng(7);
  for (std::size_t i = 0; i < kProbes; ++i) {
    std::uint32_t k = std::uniform_int_distribution<std::uint32_t>(0, kAddresses - 1)(rng);
    owned[i] = {primaryName(k), cdnName(k)};  // newest first, as names() gives them
    views[i] = {owned[i][0], owned[i][1]};
    keys.emplace_back(policy::Protocol::kTcp, policy::Direction::kOutbound, addressOf(k), kPort,
                      std::span<const std::string_view>(views[i]));
  }
  const policy::Matcher& m = *b.policy->matcher;
  std::size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(m.decide(keys[i++ & (kProbes - 1)]));
}
BENCHMARK(BM_SpreadMatcherOnly)->Arg(1)->Arg(1000)->Arg(100000);

// Flow setup without I/O: parse the SYN, Decider::decide (names, policy, FlowMods and the
// PacketOut, names string included), as bench/decide's 725 ns figure minus the OpenFlow
// decode/encode. Args: case (0 exact host, 3 no match), rules.
void BM_DeciderDecide(benchmark::State& state) {
  auto c = static_cast<Case>(state.range(0));
  auto rules = static_cast<std::uint32_t>(state.range(1));
  const Built& b = built(c, rules);
  decide::SwitchView sv;
  sv.dpid = 1;
  decide::GatewayPort gw{"default", 5, *MacAddr::parse("02:d1:00:00:00:01"), *Ip4::parse("10.200.0.1")};
  sv.gateways_by_port[5] = gw;
  sv.gateway_port_by_env["default"] = 5;
  decide::CellPort cell{1, "bench", "default", 1, *MacAddr::parse("02:00:00:c8:00:01"),
                        *Ip4::parse("10.200.0.2"), b.policy, runtime()};
  sv.cell_port_by_ip[cell.ip.v] = 1;
  sv.cells_by_port[1] = cell;
  auto raw = packet::buildTcp4({cell.mac, gw.mac, 0}, cell.ip, addressOf(kProbeK[static_cast<int>(c)]).v4(), 40000,
                               kPort, packet::kTcpSyn);
  decide::Decider decider;
  {
    auto f = packet::parseFrame(Bytes(raw));
    auto d = decider.decide(sv, 1, *f, kNow);
    bool want_rule = c != Case::kNone;
    if (d.rule_id != b.target_id || d.packet_outs.empty() ||
        d.reason != (want_rule ? decide::Reason::kPolicyRule : decide::Reason::kPolicyDefault)) {
      state.SkipWithError("the decider did not decide as expected");
      return;
    }
  }
  for (auto _ : state) {
    auto f = packet::parseFrame(Bytes(raw));
    auto d = decider.decide(sv, 1, *f, kNow);
    benchmark::DoNotOptimize(d);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_DeciderDecide)->Args({0, 1})->Args({0, 100000})->Args({3, 1})->Args({3, 100000});

// Bytes in use: small chunks (uordblks) plus chunks glibc gave their own mmap (hblkhd).
std::size_t heapInUse() {
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

void reportNameTableMemory() {
  std::size_t before = heapInUse();
  runtime() = std::make_shared<decide::CellRuntime>(tableLimits());
  fillNames(runtime()->names);
  std::size_t total = heapInUse() - before;
  names::Stats s = runtime()->names.stats();
  // The name strings alone, allocated as the names bench does (length byte + characters).
  std::size_t strings_size = 0;
  {
    std::vector<std::unique_ptr<char[]>> strings;
    strings.reserve(2 * kAddresses);
    std::size_t b = heapInUse();
    for (std::uint32_t k = 0; k < kAddresses; ++k) {
      strings.push_back(std::make_unique<char[]>(primaryName(k).size() + 1));
      strings.push_back(std::make_unique<char[]>(cdnName(k).size() + 1));
    }
    strings_size = heapInUse() - b;
  }
  auto per = [&](std::size_t bytes) { return static_cast<double>(bytes) / static_cast<double>(s.entries); };
  std::printf("name table: entries=%zu names=%zu addresses=%zu heap=%zu B\n", s.entries, s.names, s.addresses, total);
  std::printf("  per entry: %.1f B total, %.1f B without name strings (stats estimate %.1f B)\n", per(total),
              per(total - strings_size), per(s.size));
}

void reportPolicyMemory(std::uint32_t rules) {
  std::string text = policyText(Case::kExact, rules);
  std::size_t h0 = heapInUse();
  auto parsed = policy::parsePolicy(text, "bench.toml");
  std::size_t h1 = heapInUse();
  auto m = std::make_shared<const policy::Matcher>(std::move(parsed.value()));
  std::size_t h2 = heapInUse();
  std::size_t hosts = 0, prefixes = 0;
  for (const auto& r : m->policy().rules) {
    hosts += r.match.hosts.size();
    prefixes += r.match.addresses.size();
  }
  auto per = [&](std::size_t bytes) { return static_cast<double>(bytes) / rules; };
  std::printf(
      "policy %6u rules (%zu hosts, %zu prefixes; text %.1f B/rule): AppPolicy %.1f B/rule, Matcher index "
      "%.1f B/rule, total %.1f B/rule\n",
      rules, hosts, prefixes, per(text.size()), per(h1 - h0), per(h2 - h1), per(h2 - h0));
}

}  // namespace

int main(int argc, char** argv) {
  reportPolicyMemory(1000);
  reportPolicyMemory(100000);
  reportNameTableMemory();
  std::fflush(stdout);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
