// The scripts that ship in lua/, on their own: fed packets, what do they decide and ask for.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "common/net.h"
#include "script/engine.h"

namespace cw::script {
namespace {

std::unique_ptr<Script> loadShipped(const std::string& name, const std::vector<Setting>& settings = {}) {
  std::ifstream in(std::string(CW_SHIPPED_SCRIPTS_DIR) + "/" + name + ".lua");
  std::ostringstream ss;
  ss << in.rdbuf();
  auto s = Script::load(name, ss.str(), Limits{}, settings);
  EXPECT_TRUE(s) << (s ? "" : s.error().message);
  return s ? std::move(s.value()) : nullptr;
}

// A TCP/IPv4 frame with flags, or UDP when flags < 0.
struct Pkt {
  std::string frame;
  Packet p;
};
Pkt probe(const char* src, const char* dst, std::uint16_t dport, int flags, const char* dir = "out",
          std::uint32_t cell = 1, const char* app = "app") {
  Pkt k;
  k.frame.assign(14 + 20 + 20, '\0');
  k.frame[12] = 0x08;
  k.frame[14] = 0x45;
  k.frame[14 + 9] = static_cast<char>(flags < 0 ? 17 : 6);
  k.frame[36] = static_cast<char>(dport >> 8);
  k.frame[37] = static_cast<char>(dport);
  k.p.frame = k.frame;
  k.p.ip_src = Ip4::parse(src)->v;
  k.p.ip_dst = Ip4::parse(dst)->v;
  k.p.port_src = 40000;
  k.p.port_dst = dport;
  k.p.proto = static_cast<std::uint8_t>(flags < 0 ? 17 : 6);
  k.p.tcp_flags = static_cast<std::uint8_t>(flags < 0 ? 0 : flags);
  k.p.direction = dir;
  k.p.cell = cell;
  k.p.app = app;
  return k;
}

constexpr int kSyn = 0x02, kAck = 0x10, kFin = 0x01, kPsh = 0x08, kUrg = 0x20;

TEST(PortscanGuard, BlocksAVerticalScanAtTheThreshold) {
  auto s = loadShipped("portscan_guard");
  ASSERT_TRUE(s);
  for (std::uint16_t port = 1; port < 15; ++port) {
    auto k = probe("10.200.0.2", "192.0.2.1", port, kSyn);
    Effects e;
    EXPECT_EQ(s->onPacket(k.p, e), Verdict::kContinue) << port;
    EXPECT_TRUE(e.flows.empty());
  }
  auto k = probe("10.200.0.2", "192.0.2.1", 15, kSyn);
  Effects e;
  EXPECT_EQ(s->onPacket(k.p, e), Verdict::kDrop);
  ASSERT_EQ(e.flows.size(), 1u);
  // A cell scanning out is blocked as the cell (its address goes back to the pool with it).
  EXPECT_EQ(e.flows[0].match.str(), "cell=1");
  EXPECT_EQ(e.flows[0].hard, 300);
  ASSERT_EQ(e.logs.size(), 1u);
  EXPECT_NE(e.logs[0].find("blocked cell 1 (10.200.0.2, app app)"), std::string::npos) << e.logs[0];
  // A later cell with the same address is a new source.
  auto reused = probe("10.200.0.2", "192.0.2.1", 1, kSyn, "out", 2);
  Effects e0;
  EXPECT_EQ(s->onPacket(reused.p, e0), Verdict::kContinue);
  // Until the flow holds, the source's packets are dropped by the script itself.
  auto again = probe("10.200.0.2", "192.0.2.9", 80, kSyn);
  Effects e2;
  EXPECT_EQ(s->onPacket(again.p, e2), Verdict::kDrop);
  // Another source is not affected.
  auto other = probe("10.200.0.3", "192.0.2.1", 80, kSyn, "out", 3);
  Effects e3;
  EXPECT_EQ(s->onPacket(other.p, e3), Verdict::kContinue);
  EXPECT_FALSE(s->disabled()) << s->whyDisabled();
}

TEST(PortscanGuard, HorizontalUdpAndStealthScans) {
  auto s = loadShipped("portscan_guard", {{"hosts", std::int64_t{5}}, {"block", std::int64_t{60}}});
  ASSERT_TRUE(s);
  Verdict last = Verdict::kContinue;
  for (int h = 1; h <= 5; ++h) {
    std::string dst = "192.0.2." + std::to_string(h);
    auto k = probe("203.0.113.7", dst.c_str(), 161, -1, "in");
    Effects e;
    last = s->onPacket(k.p, e);
    if (h < 5) {
      EXPECT_EQ(last, Verdict::kContinue) << h;
    }
  }
  EXPECT_EQ(last, Verdict::kDrop);
  // NULL and Xmas probes are scans by themselves.
  for (int flags : {0, kFin | kPsh | kUrg}) {
    auto k = probe(flags == 0 ? "198.51.100.1" : "198.51.100.2", "10.200.0.2", 8080, flags, "in");
    Effects e;
    EXPECT_EQ(s->onPacket(k.p, e), Verdict::kDrop) << flags;
    ASSERT_EQ(e.flows.size(), 1u);
    EXPECT_EQ(e.flows[0].hard, 60);
  }
  // FIN probes count one each; established traffic (ACK) is not a probe.
  for (int i = 0; i < 100; ++i) {
    auto k = probe("198.51.100.9", "10.200.0.2", static_cast<std::uint16_t>(1000 + i), kAck);
    Effects e;
    EXPECT_EQ(s->onPacket(k.p, e), Verdict::kContinue);
  }
  EXPECT_FALSE(s->disabled()) << s->whyDisabled();
}

TEST(PortscanGuard, ForgetsSlowProbesAndBoundsItsMemory) {
  auto s = loadShipped("portscan_guard", {{"window", 0.05}, {"sources", std::int64_t{100}}});
  ASSERT_TRUE(s);
  // 14 ports, a pause longer than the window, 14 more: never 15 within one window.
  for (int round = 0; round < 2; ++round) {
    for (std::uint16_t port = 1; port < 15; ++port) {
      auto k = probe("10.200.0.2", "192.0.2.1", static_cast<std::uint16_t>(port + 100 * round), kSyn);
      Effects e;
      EXPECT_EQ(s->onPacket(k.p, e), Verdict::kContinue);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(80));
  }
  // 10,000 sources: the oldest are forgotten; memory stays small.
  for (std::uint32_t i = 0; i < 10000; ++i) {
    auto k = probe("10.0.0.1", "192.0.2.1", 80, kSyn, "in");
    k.p.ip_src = 0x0a000000 + i;
    Effects e;
    s->onPacket(k.p, e);
  }
  EXPECT_FALSE(s->disabled()) << s->whyDisabled();
  EXPECT_LT(s->memoryUsed(), std::size_t{2} << 20);
}

TEST(TelnetBlock, DropsTelnetOnly) {
  auto s = loadShipped("telnet_block");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->filters(), 1u);
  auto t = probe("10.200.0.2", "192.0.2.1", 23, kSyn);
  t.frame[14 + 20 + 2] = 0;
  t.frame[14 + 20 + 3] = 23;
  t.p.frame = t.frame;
  Effects e;
  EXPECT_EQ(s->onPacket(t.p, e), Verdict::kDrop);
  ASSERT_EQ(e.flows.size(), 1u);
  EXPECT_EQ(e.flows[0].match.str(), "ip_src=10.200.0.2 port_dst=23");
  auto h = probe("10.200.0.2", "192.0.2.1", 80, kSyn);
  h.frame[14 + 20 + 3] = 80;
  h.p.frame = h.frame;
  Effects e2;
  EXPECT_EQ(s->onPacket(h.p, e2), Verdict::kContinue);
  EXPECT_TRUE(e2.flows.empty());
}

// IP options (an app may set IP_OPTIONS on its socket: no privilege needed) move the TCP
// header; the port is where this packet's header length says.
TEST(TelnetBlock, FindsThePortPastIpOptions) {
  auto s = loadShipped("telnet_block");
  ASSERT_TRUE(s);
  for (std::size_t options : {4u, 8u, 40u}) {
    auto t = probe("10.200.0.2", "192.0.2.1", 23, kSyn);
    // NOPs, then an end of options: at a fixed 20 bytes the "port" would read 0x0101.
    std::string opts(options, '\x01');
    opts.back() = 0;
    t.frame.insert(14 + 20, opts);
    t.frame[14] = static_cast<char>(0x40 | (20 + options) / 4);
    t.frame[14 + 20 + options + 3] = 23;
    t.p.frame = t.frame;
    Effects e;
    EXPECT_EQ(s->onPacket(t.p, e), Verdict::kDrop) << options;
    ASSERT_EQ(e.flows.size(), 1u) << options;
    EXPECT_EQ(e.flows[0].match.str(), "ip_src=10.200.0.2 port_dst=23");
  }
}

// A fragment after the first has no TCP header: its data is not a port, and a short one must
// not make the script fail (a failed script is disabled: telnet would go through after it).
TEST(TelnetBlock, LaterFragmentsAreNotPortsAndDoNotBreakIt) {
  auto s = loadShipped("telnet_block");
  ASSERT_TRUE(s);
  for (std::size_t data : {0u, 1u, 3u, 8u}) {
    auto f = probe("192.0.2.1", "10.200.0.2", 0, kSyn, "in");
    f.frame.resize(14 + 20 + data, '\0');
    if (data >= 4) f.frame[14 + 20 + 3] = 23;  // what would be the port
    f.frame[14 + 6] = 0;
    f.frame[14 + 7] = 3;  // fragment offset 24 bytes
    f.p.frame = f.frame;
    f.p.port_dst = 0;
    f.p.tcp_flags = 0;
    Effects e;
    EXPECT_EQ(s->onPacket(f.p, e), Verdict::kContinue) << data;
    EXPECT_TRUE(e.flows.empty()) << data;
    EXPECT_FALSE(s->disabled()) << s->whyDisabled();
  }
}

TEST(ConnRate, RejectsBeyondTheBurstPerApp) {
  auto s = loadShipped("conn_rate", {{"rate", std::int64_t{1}}, {"burst", std::int64_t{3}}, {"apps", std::string("busy")}});
  ASSERT_TRUE(s);
  int rejected = 0;
  for (int i = 0; i < 10; ++i) {
    auto k = probe("10.200.0.2", "192.0.2.1", 80, kSyn, "out", 1, "busy");
    Effects e;
    if (s->onPacket(k.p, e) == Verdict::kReject) ++rejected;
  }
  EXPECT_EQ(rejected, 7);
  // Another app is not limited; nor is the busy app's inbound traffic.
  auto other = probe("10.200.0.3", "192.0.2.1", 80, kSyn, "out", 2, "calm");
  Effects e;
  EXPECT_EQ(s->onPacket(other.p, e), Verdict::kContinue);
  auto in = probe("192.0.2.1", "10.200.0.2", 80, kSyn, "in", 1, "busy");
  EXPECT_EQ(s->onPacket(in.p, e), Verdict::kContinue);
}

// The worked examples of docs/scripts.md, as printed there: they must load and do what the
// text says.
std::vector<std::string> docExamples() {
  std::ifstream in(std::string(CW_SHIPPED_SCRIPTS_DIR) + "/../docs/scripts.md");
  std::ostringstream ss;
  ss << in.rdbuf();
  const std::string doc = ss.str();
  std::vector<std::string> out;
  for (std::size_t at = doc.find("## Worked example"); at != std::string::npos;
       at = doc.find("## Worked example", at + 1)) {
    std::size_t b = doc.find("```lua\n", at);
    std::size_t e = doc.find("```", b + 7);
    if (b == std::string::npos || e == std::string::npos) break;
    out.push_back(doc.substr(b + 7, e - b - 7));
  }
  return out;
}

TEST(DocExamples, PortScanGuardAndQos) {
  auto ex = docExamples();
  ASSERT_EQ(ex.size(), 2u);
  auto guard = Script::load("example1", ex[0]);
  ASSERT_TRUE(guard) << guard.error().message;
  Verdict last = Verdict::kContinue;
  Effects e;
  for (std::uint16_t port = 1; port <= 15; ++port) {
    e = Effects{};
    auto k = probe("10.200.0.2", "192.0.2.1", port, kSyn);
    last = (*guard)->onPacket(k.p, e);
  }
  EXPECT_EQ(last, Verdict::kDrop);
  ASSERT_EQ(e.flows.size(), 1u);
  EXPECT_EQ(e.flows[0].hard, 300);
  ASSERT_EQ(e.logs.size(), 1u);
  EXPECT_EQ(e.logs[0], "blocked 10.200.0.2 after 15 ports in 10 s");

  auto qos = Script::load("example2", ex[1]);
  ASSERT_TRUE(qos) << qos.error().message;
  auto smb = probe("10.200.0.2", "192.0.2.1", 445, kSyn, "out", 4, "backup");
  Effects e2;
  EXPECT_EQ((*qos)->onPacket(smb.p, e2), Verdict::kReject);
  auto web = probe("10.200.0.2", "192.0.2.1", 443, kSyn, "out", 4, "backup");
  Effects e3;
  EXPECT_EQ((*qos)->onPacket(web.p, e3), Verdict::kContinue);
  ASSERT_EQ(e3.flows.size(), 1u);
  EXPECT_EQ(e3.flows[0].action, FlowRequest::Action::kLimit);
  EXPECT_EQ(e3.flows[0].match.cell, 4u);
  EXPECT_EQ(e3.flows[0].rate_kbps, 8000u);
  Effects e4;  // once per cell
  EXPECT_EQ((*qos)->onPacket(web.p, e4), Verdict::kContinue);
  EXPECT_TRUE(e4.flows.empty());
  EXPECT_FALSE((*qos)->disabled()) << (*qos)->whyDisabled();
}

}  // namespace
}  // namespace cw::script
