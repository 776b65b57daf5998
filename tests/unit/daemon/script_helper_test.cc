// Scripts in a helper process: the same answers as in-process, and whatever the helper does
// (loops, dies, is killed) ends only the helper.
#include "daemon/script_helper.h"

#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <fstream>
#include <string>

#include "common/net.h"

namespace cw::daemon {
namespace {

using script::Effects;
using script::FlowRequest;
using script::Packet;
using script::Verdict;

// A TCP/IPv4 frame from src to dst:dport (Ethernet + IP + TCP headers, no payload).
std::string tcpFrame(const char* src, const char* dst, std::uint16_t sport, std::uint16_t dport) {
  std::string f(14 + 20 + 20, '\0');
  f[12] = 0x08;
  f[14] = 0x45;
  f[14 + 9] = 6;
  auto put32 = [&](std::size_t at, std::uint32_t v) {
    for (unsigned i = 0; i < 4; ++i) f[at + i] = static_cast<char>(v >> (24 - 8 * i));
  };
  put32(14 + 12, Ip4::parse(src)->v);
  put32(14 + 16, Ip4::parse(dst)->v);
  f[34] = static_cast<char>(sport >> 8);
  f[35] = static_cast<char>(sport);
  f[36] = static_cast<char>(dport >> 8);
  f[37] = static_cast<char>(dport);
  return f;
}

struct FixedNames : Packet::Names {
  explicit FixedNames(std::string n) : text(std::move(n)) {}
  std::string_view get() const override { return text; }
  std::string text;
};

Packet packetOf(const std::string& frame, const char* src, const char* dst, std::uint16_t sport, std::uint16_t dport) {
  Packet p;
  p.frame = frame;
  p.ip_src = Ip4::parse(src)->v;
  p.ip_dst = Ip4::parse(dst)->v;
  p.port_src = sport;
  p.port_dst = dport;
  p.proto = 6;
  return p;
}

// The seed design's telnet filter: the frame sliced and unpacked by hand.
constexpr const char* kSeedTelnet = R"(
function filter_telnet(frame)
  local ip = string.sub(frame, ETH_HEADER_LEN + 1)
  local proto = string.unpack("B", ip, 10)
  if proto ~= TCP then return end
  local tcp = string.sub(ip, IP_HEADER_LEN + 1)
  local dport = string.unpack(">H", tcp, 3)
  if dport == TELNET then
    drop(ip_src, port_dst)
  end
end
)";

Expected<std::unique_ptr<ScriptRunner>> helper(const std::string& text, script::Limits limits = {},
                                               const std::vector<script::Setting>& settings = {}) {
  return helperRunner(CELLWALLD_BIN, "test.lua", text, limits, settings);
}

void expectSameFlow(const FlowRequest& a, const FlowRequest& b) {
  EXPECT_EQ(a.match.cell, b.match.cell);
  EXPECT_EQ(a.match.ip_src, b.match.ip_src);
  EXPECT_EQ(a.match.ip_dst, b.match.ip_dst);
  EXPECT_EQ(a.match.src_len, b.match.src_len);
  EXPECT_EQ(a.match.dst_len, b.match.dst_len);
  EXPECT_EQ(a.match.proto, b.match.proto);
  EXPECT_EQ(a.match.port_src, b.match.port_src);
  EXPECT_EQ(a.match.port_dst, b.match.port_dst);
  EXPECT_EQ(a.action, b.action);
  EXPECT_EQ(a.priority, b.priority);
  EXPECT_EQ(a.idle, b.idle);
  EXPECT_EQ(a.hard, b.hard);
  EXPECT_EQ(a.cookie, b.cookie);
  EXPECT_EQ(a.rate_pps, b.rate_pps);
  EXPECT_EQ(a.rate_kbps, b.rate_kbps);
  EXPECT_EQ(a.burst, b.burst);
}

// Whether pid is gone for good: not running, and not left as our zombie either.
bool reaped(pid_t pid) {
  errno = 0;
  return ::waitpid(pid, nullptr, WNOHANG) < 0 && errno == ECHILD && ::kill(pid, 0) != 0;
}

std::size_t openFds() {
  std::size_t n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (::readdir(d) != nullptr) ++n;
    ::closedir(d);
  }
  return n;
}

TEST(ScriptHelper, SeedTelnetFilterAnswersAsInProcess) {
  auto in = script::Script::load("test.lua", kSeedTelnet);
  ASSERT_TRUE(in) << in.error().message;
  auto out = helper(kSeedTelnet);
  ASSERT_TRUE(out) << out.error().message;
  ScriptRunner& h = **out;
  EXPECT_EQ(h.filters(), (*in)->filters());
  EXPECT_GT(h.memoryUsed(), 0u);
  EXPECT_TRUE(h.takeLoadEffects().empty());

  auto telnet = tcpFrame("10.0.0.5", "10.0.0.9", 40000, 23);
  Effects want, got;
  EXPECT_EQ((*in)->onPacket(packetOf(telnet, "10.0.0.5", "10.0.0.9", 40000, 23), want), Verdict::kDrop);
  EXPECT_EQ(h.onPacket(packetOf(telnet, "10.0.0.5", "10.0.0.9", 40000, 23), got), Verdict::kDrop);
  ASSERT_EQ(got.flows.size(), 1u);
  ASSERT_EQ(want.flows.size(), 1u);
  expectSameFlow(got.flows[0], want.flows[0]);
  EXPECT_EQ(got.flows[0].match.port_dst, 23);

  auto http = tcpFrame("10.0.0.5", "10.0.0.9", 40001, 80);
  Effects none;
  EXPECT_EQ(h.onPacket(packetOf(http, "10.0.0.5", "10.0.0.9", 40001, 80), none), Verdict::kContinue);
  EXPECT_TRUE(none.empty());
  EXPECT_FALSE(h.disabled());
  EXPECT_EQ(h.nextTimer(), -1);
}

TEST(ScriptHelper, EveryFieldCrossesBothWays) {
  const char* text = R"(
limit{ip_dst = "192.168.0.0/16", proto = "udp", port_src = 5, port_dst = 53, cell = 7, pps = 10, burst = 3,
      priority = 12, idle = 30, hard = 60, cookie = 99}
log("loaded", config.greeting)
function on_packet(pkt)
  log(pkt.cell, pkt.app, pkt.in_port, pkt.ip_src, pkt.ip_dst, pkt.port_src, pkt.port_dst, pkt.proto,
      pkt.tcp_flags, pkt.names, pkt.direction, pkt.process, #pkt.frame)
  count("n", config.n)
  count("ratio", math.floor(config.ratio * 10))
  if config.on then count("on") end
  remove_flows(4000000000)
  allow{ip_src = pkt.ip_src}
  return "reject"
end
)";
  std::vector<script::Setting> settings = {{"greeting", std::string("hi")},
                                           {"n", std::int64_t{-5}},
                                           {"ratio", 0.5},
                                           {"on", true}};
  auto out = helper(text, {}, settings);
  ASSERT_TRUE(out) << out.error().message;
  ScriptRunner& h = **out;
  Effects load = h.takeLoadEffects();
  ASSERT_EQ(load.flows.size(), 1u);
  const FlowRequest& f = load.flows[0];
  EXPECT_EQ(f.match.cell, 7u);
  EXPECT_EQ(f.match.ip_dst, Ip4::parse("192.168.0.0")->v);
  EXPECT_EQ(f.match.dst_len, 16);
  EXPECT_EQ(f.match.proto, 17);
  EXPECT_EQ(f.match.port_src, 5);
  EXPECT_EQ(f.match.port_dst, 53);
  EXPECT_EQ(f.action, FlowRequest::Action::kLimit);
  EXPECT_EQ(f.priority, 12);
  EXPECT_EQ(f.idle, 30);
  EXPECT_EQ(f.hard, 60);
  EXPECT_EQ(f.cookie, 99u);
  EXPECT_EQ(f.rate_pps, 10u);
  EXPECT_EQ(f.burst, 3u);
  ASSERT_EQ(load.logs.size(), 1u);
  EXPECT_EQ(load.logs[0], "loaded hi");
  EXPECT_TRUE(h.takeLoadEffects().empty());  // taken once

  auto frame = tcpFrame("10.0.0.5", "10.0.0.9", 40000, 443);
  Packet p = packetOf(frame, "10.0.0.5", "10.0.0.9", 40000, 443);
  p.cell = 3;
  p.app = "org.example.App";
  p.in_port = 17;
  p.tcp_flags = 0x12;
  FixedNames names("example.org,www.example.org");
  p.names = &names;
  p.direction = "in";
  p.process = "curl";
  Effects fx;
  fx.logs.push_back("already there");
  EXPECT_EQ(h.onPacket(p, fx), Verdict::kReject);
  ASSERT_EQ(fx.logs.size(), 2u);  // appended, as in-process
  EXPECT_EQ(fx.logs[1], "3 org.example.App 17 10.0.0.5 10.0.0.9 40000 443 6 18 example.org,www.example.org in curl 54");
  ASSERT_EQ(fx.counts.size(), 3u);
  EXPECT_EQ(fx.counts[0], (std::pair<std::string, std::int64_t>("n", -5)));
  EXPECT_EQ(fx.counts[1], (std::pair<std::string, std::int64_t>("ratio", 5)));
  EXPECT_EQ(fx.counts[2], (std::pair<std::string, std::int64_t>("on", 1)));
  ASSERT_EQ(fx.removes.size(), 1u);
  EXPECT_EQ(fx.removes[0], 4000000000u);
  ASSERT_EQ(fx.flows.size(), 1u);
  EXPECT_EQ(fx.flows[0].action, FlowRequest::Action::kAllow);
  EXPECT_EQ(fx.flows[0].match.ip_src, p.ip_src);
}

TEST(ScriptHelper, RunawayScriptIsDisabledAndTheNextCallContinues) {
  auto out = helper("function on_packet(pkt) local t = {} while true do t[#t+1] = 1 end end");
  ASSERT_TRUE(out) << out.error().message;
  ScriptRunner& h = **out;
  const pid_t pid = helperPid(h);
  ASSERT_GT(pid, 0);
  auto frame = tcpFrame("10.0.0.5", "10.0.0.9", 40000, 80);
  Effects fx;
  EXPECT_EQ(h.onPacket(packetOf(frame, "10.0.0.5", "10.0.0.9", 40000, 80), fx), Verdict::kContinue);
  EXPECT_TRUE(h.disabled());
  EXPECT_NE(h.whyDisabled().find("on_packet"), std::string::npos) << h.whyDisabled();
  Effects again;
  EXPECT_EQ(h.onPacket(packetOf(frame, "10.0.0.5", "10.0.0.9", 40000, 80), again), Verdict::kContinue);
  EXPECT_TRUE(again.empty());
  EXPECT_EQ(h.nextTimer(), -1);
  // A disabled script's helper has nothing left to do: it is stopped and reaped.
  EXPECT_EQ(helperPid(h), -1);
  EXPECT_TRUE(reaped(pid));
}

TEST(ScriptHelper, HelperThatStopsAnsweringIsKilledAfter250ms) {
  // No instruction budget to speak of: only the parent's deadline ends this one.
  script::Limits limits;
  limits.instructions_per_call = ~std::uint64_t{0};
  auto out = helper("function on_packet(pkt) while true do end end", limits);
  ASSERT_TRUE(out) << out.error().message;
  ScriptRunner& h = **out;
  const pid_t pid = helperPid(h);
  auto frame = tcpFrame("10.0.0.5", "10.0.0.9", 40000, 80);
  Effects fx;
  const std::int64_t start = script::monotonicMs();
  EXPECT_EQ(h.onPacket(packetOf(frame, "10.0.0.5", "10.0.0.9", 40000, 80), fx), Verdict::kContinue);
  const std::int64_t took = script::monotonicMs() - start;
  EXPECT_GE(took, 240);
  EXPECT_LT(took, 2000);
  EXPECT_TRUE(h.disabled());
  EXPECT_EQ(h.whyDisabled(), "helper process did not answer within 250 ms (killed)");
  EXPECT_TRUE(reaped(pid));
}

TEST(ScriptHelper, HelperKilledFromOutsideIsReportedAndReaped) {
  auto out = helper(kSeedTelnet);
  ASSERT_TRUE(out) << out.error().message;
  ScriptRunner& h = **out;
  const pid_t pid = helperPid(h);
  ASSERT_GT(pid, 0);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  auto frame = tcpFrame("10.0.0.5", "10.0.0.9", 40000, 23);
  Effects fx;
  EXPECT_EQ(h.onPacket(packetOf(frame, "10.0.0.5", "10.0.0.9", 40000, 23), fx), Verdict::kContinue);
  EXPECT_TRUE(fx.empty());
  EXPECT_TRUE(h.disabled());
  EXPECT_NE(h.whyDisabled().find("signal 9"), std::string::npos) << h.whyDisabled();
  EXPECT_EQ(h.whyDisabled(), "helper process killed by signal 9 (SIGKILL)");
  EXPECT_TRUE(reaped(pid));
  Effects timers;
  EXPECT_EQ(h.runTimers(script::monotonicMs() + 1000, timers), 0);
  EXPECT_EQ(h.nextTimer(), -1);
}

TEST(ScriptHelper, TimersRunInTheHelper) {
  auto out = helper(R"(every(0.01, function() count("t") end))");
  ASSERT_TRUE(out) << out.error().message;
  ScriptRunner& h = **out;
  const std::int64_t now = script::monotonicMs();
  const std::int64_t due = h.nextTimer();
  EXPECT_GE(due, now - 1000);
  EXPECT_LE(due, now + 1000);
  Effects fx;
  EXPECT_EQ(h.runTimers(now + 1000, fx), 1);
  ASSERT_EQ(fx.counts.size(), 1u);
  EXPECT_EQ(fx.counts[0].first, "t");
  EXPECT_EQ(fx.counts[0].second, 1);
  EXPECT_GT(h.nextTimer(), now + 1000);  // a period later, from the parent's clock
  EXPECT_FALSE(h.disabled());
}

TEST(ScriptHelper, LoadErrorsComeBackAsTheError) {
  const char* bad = "function on_packet(pkt) return 'drop' \n x x x";
  auto in = script::Script::load("test.lua", bad);
  ASSERT_FALSE(in);
  auto out = helper(bad);
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().message, in.error().message);

  auto runtime = helper("error('no thanks')");
  ASSERT_FALSE(runtime);
  EXPECT_NE(runtime.error().message.find("no thanks"), std::string::npos) << runtime.error().message;
}

TEST(ScriptHelper, MissingBinaryIsAClearError) {
  auto out = helperRunner("/nonexistent/cellwalld", "test.lua", kSeedTelnet, {}, {});
  ASSERT_FALSE(out);
  EXPECT_NE(out.error().message.find("cannot start a helper process"), std::string::npos) << out.error().message;
}

TEST(ScriptHelper, HelperHasNoNetworkAndNoRoot) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (a network namespace and a uid to drop)";
  auto out = helper(kSeedTelnet);
  ASSERT_TRUE(out) << out.error().message;
  const pid_t pid = helperPid(**out);
  char mine[256] = {};
  char its[256] = {};
  ASSERT_GT(::readlink("/proc/self/ns/net", mine, sizeof mine - 1), 0);
  const std::string path = "/proc/" + std::to_string(pid) + "/ns/net";
  ASSERT_GT(::readlink(path.c_str(), its, sizeof its - 1), 0);
  EXPECT_NE(std::string(mine), std::string(its));

  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  std::string uid, gid, groups, nnp;
  while (std::getline(status, line)) {
    if (line.rfind("Uid:", 0) == 0) uid = line;
    if (line.rfind("Gid:", 0) == 0) gid = line;
    if (line.rfind("Groups:", 0) == 0) groups = line;
    if (line.rfind("NoNewPrivs:", 0) == 0) nnp = line;
  }
  ASSERT_FALSE(groups.empty());
  EXPECT_EQ(uid, "Uid:\t65534\t65534\t65534\t65534");
  EXPECT_EQ(gid, "Gid:\t65534\t65534\t65534\t65534");
  EXPECT_EQ(groups.find_first_of("0123456789"), std::string::npos) << groups;  // no supplementary group
  EXPECT_EQ(nnp, "NoNewPrivs:\t1");
}

TEST(ScriptHelper, DestroyingTheRunnerLeavesNoProcessAndNoFd) {
  const std::size_t fds = openFds();
  pid_t pid = -1;
  {
    auto out = helper(kSeedTelnet);
    ASSERT_TRUE(out) << out.error().message;
    pid = helperPid(**out);
    ASSERT_GT(pid, 0);
    ASSERT_EQ(::kill(pid, 0), 0);
  }
  EXPECT_TRUE(reaped(pid));
  { auto failed = helper("x x x"); }
  EXPECT_EQ(openFds(), fds);
}

}  // namespace
}  // namespace cw::daemon
