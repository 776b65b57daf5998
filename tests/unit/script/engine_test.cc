// The script engine on its own: the seed style, the sandbox and the limits.
#include "script/engine.h"

#include <gtest/gtest.h>
#include <pthread.h>

#include <algorithm>
#include <csignal>
#include <string>
#include <thread>

#include "common/net.h"

namespace cw::script {
namespace {

// A TCP/IPv4 frame from src to dst:dport (Ethernet + IP + TCP headers, no payload), with
// ip_options (a multiple of 4 bytes) after the IP header and tcp_options_size bytes of TCP
// options (NOPs).
std::string tcpFrame(const char* src, const char* dst, std::uint16_t sport, std::uint16_t dport,
                     const std::string& ip_options = "", std::size_t tcp_options_size = 0) {
  const std::size_t ip_size = 20 + ip_options.size(), tcp_at = 14 + ip_size;
  std::string f(tcp_at + 20 + tcp_options_size, '\x01');
  std::fill(f.begin(), f.begin() + static_cast<std::ptrdiff_t>(tcp_at + 20), '\0');
  f[12] = 0x08;
  f[14] = static_cast<char>(0x40 | ip_size / 4);
  f[14 + 9] = 6;
  auto put32 = [&](std::size_t at, std::uint32_t v) {
    for (unsigned i = 0; i < 4; ++i) f[at + i] = static_cast<char>(v >> (24 - 8 * i));
  };
  put32(14 + 12, Ip4::parse(src)->v);
  put32(14 + 16, Ip4::parse(dst)->v);
  f.replace(34, ip_options.size(), ip_options);
  f[tcp_at] = static_cast<char>(sport >> 8);
  f[tcp_at + 1] = static_cast<char>(sport);
  f[tcp_at + 2] = static_cast<char>(dport >> 8);
  f[tcp_at + 3] = static_cast<char>(dport);
  f[tcp_at + 12] = static_cast<char>((20 + tcp_options_size) / 4 << 4);
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

// Written as the seed design's scripts are: the frame sliced and unpacked by hand.
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

TEST(Script, SeedStyleTelnetFilterDropsTelnetAndNothingElse) {
  auto s = Script::load("telnet.lua", kSeedTelnet);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ((*s)->filters(), 1u);
  auto telnet = tcpFrame("10.0.0.5", "10.0.0.9", 40000, 23);
  Effects e;
  EXPECT_EQ((*s)->onPacket(packetOf(telnet, "10.0.0.5", "10.0.0.9", 40000, 23), e), Verdict::kDrop);
  ASSERT_EQ(e.flows.size(), 1u);
  EXPECT_EQ(e.flows[0].match.ip_src, Ip4::parse("10.0.0.5")->v);
  EXPECT_EQ(e.flows[0].match.src_len, 32);
  EXPECT_EQ(e.flows[0].match.port_dst, 23);
  EXPECT_EQ(e.flows[0].action, FlowRequest::Action::kDrop);
  auto http = tcpFrame("10.0.0.5", "10.0.0.9", 40001, 80);
  Effects none;
  EXPECT_EQ((*s)->onPacket(packetOf(http, "10.0.0.5", "10.0.0.9", 40001, 80), none), Verdict::kContinue);
  EXPECT_TRUE(none.flows.empty());
  EXPECT_FALSE((*s)->disabled());
}

// An IP header with options (the app set IP_OPTIONS on its socket) moves the TCP header: a
// seed-style filter finds the port at this packet's IP_HEADER_LEN, not at 20.
TEST(Script, SeedStyleHeaderLengthsAreThePackets) {
  auto s = Script::load("telnet.lua", kSeedTelnet);
  ASSERT_TRUE(s) << s.error().message;
  // NOPs and an end of options: read at a fixed 20 bytes, the "port" would be 0x0100.
  for (const std::string& options : {std::string("\x01\x01\x01\x00", 4), std::string(40, '\x01')}) {
    auto telnet = tcpFrame("10.0.0.5", "10.0.0.9", 40000, 23, options);
    Effects e;
    EXPECT_EQ((*s)->onPacket(packetOf(telnet, "10.0.0.5", "10.0.0.9", 40000, 23), e), Verdict::kDrop)
        << options.size() << " bytes of options";
    ASSERT_EQ(e.flows.size(), 1u);
    EXPECT_EQ(e.flows[0].match.str(), "ip_src=10.0.0.5 port_dst=23");
  }
  // Both lengths, per packet; and 20 for a packet without the header (a bare Packet).
  auto lens = Script::load("lens.lua", "function filter_l(frame) log(IP_HEADER_LEN, TCP_HEADER_LEN) end");
  ASSERT_TRUE(lens) << lens.error().message;
  auto plain = tcpFrame("10.0.0.5", "10.0.0.9", 40000, 80);
  auto optioned = tcpFrame("10.0.0.5", "10.0.0.9", 40000, 80, std::string(8, '\x01'), 12);
  std::string seen;
  for (const std::string* f : {&optioned, &plain, &optioned}) {
    Effects e;
    (*lens)->onPacket(packetOf(*f, "10.0.0.5", "10.0.0.9", 40000, 80), e);
    ASSERT_EQ(e.logs.size(), 1u);
    seen += e.logs[0] + ";";
  }
  Packet bare;
  bare.proto = 6;
  Effects e;
  (*lens)->onPacket(bare, e);
  ASSERT_EQ(e.logs.size(), 1u);
  seen += e.logs[0];
  EXPECT_EQ(seen, "28 32;20 20;28 32;20 20");
}

// A seed-style script that assigns a per-packet global (as the seed design's scripts may, to
// compute a port themselves) changes it for the rest of its call only: the next call sees its
// own packet's value, not the last one's.
TEST(Script, PerPacketGlobalsAreSetAfreshForEveryCall) {
  auto s = Script::load("assigns.lua", R"(
    port_dst = 1  -- at the top level too: gone once a packet comes
    function filter_a(frame)
      log(ip_src, port_dst, IP_HEADER_LEN)
      port_dst = port_dst + 1000
      ip_src = nil
      IP_HEADER_LEN = 0
      rawset(_G, "port_src", 7)
    end
    function filter_b(frame) log(ip_src, port_dst, IP_HEADER_LEN, port_src, rawget(_G, "port_dst")) end
    every(1, function() log("timer", port_dst, ip_src) port_dst = 5 end)
  )");
  ASSERT_TRUE(s) << s.error().message;
  auto f80 = tcpFrame("10.0.0.5", "10.0.0.9", 40000, 80);
  auto f81 = tcpFrame("10.0.0.6", "10.0.0.9", 40001, 81, std::string(4, '\x01'));
  Effects e1, e2, t, e3;
  (*s)->onPacket(packetOf(f80, "10.0.0.5", "10.0.0.9", 40000, 80), e1);
  (*s)->onPacket(packetOf(f81, "10.0.0.6", "10.0.0.9", 40001, 81), e2);
  EXPECT_EQ((*s)->runTimers(monotonicMs() + 2000, t), 1);
  (*s)->onPacket(packetOf(f80, "10.0.0.5", "10.0.0.9", 40000, 80), e3);
  ASSERT_FALSE((*s)->disabled()) << (*s)->whyDisabled();
  auto joined = [](const Effects& e) {
    std::string out;
    for (const auto& l : e.logs) out += l + ";";
    return out;
  };
  EXPECT_EQ(joined(e1), "10.0.0.5 80 20;nil 1080 0 7 nil;");
  EXPECT_EQ(joined(e2), "10.0.0.6 81 24;nil 1081 0 7 nil;");
  EXPECT_EQ(joined(t), "timer nil nil;");  // no packet: nothing to read
  EXPECT_EQ(joined(e3), "10.0.0.5 80 20;nil 1080 0 7 nil;");
  // _G's metatable is not the script's to replace (it would take the packet's globals away).
  auto mt = Script::load("mt.lua", "setmetatable(_G, nil)");
  ASSERT_FALSE(mt);
  EXPECT_NE(mt.error().message.find("protected metatable"), std::string::npos) << mt.error().message;
  // Other globals behave as ever.
  auto plain = Script::load("plain.lua", "x = 1 rawset(_G, 'y', 2) assert(rawget(_G, 'x') == 1 and y == 2)");
  EXPECT_TRUE(plain) << plain.error().message;
}

TEST(Script, VerdictsAndLogsFromFiltersInNameOrder) {
  auto s = Script::load("v.lua", R"(
    function filter_b(frame) log("b saw", port_dst, #frame) return "reject" end
    function filter_a(frame) if port_dst == 80 then return "allow" end end
    helper = 1  -- not a filter
  )");
  ASSERT_TRUE(s) << s.error().message;
  auto f = tcpFrame("10.0.0.1", "10.0.0.2", 1, 80);
  Effects e;
  EXPECT_EQ((*s)->onPacket(packetOf(f, "10.0.0.1", "10.0.0.2", 1, 80), e), Verdict::kAllow);  // a first
  EXPECT_TRUE(e.logs.empty());
  Effects e2;
  EXPECT_EQ((*s)->onPacket(packetOf(f, "10.0.0.1", "10.0.0.2", 1, 81), e2), Verdict::kReject);
  ASSERT_EQ(e2.logs.size(), 1u);
  EXPECT_EQ(e2.logs[0], "b saw 81 54");
}

TEST(Script, SandboxHasNoFilesProcessesOrCodeLoading) {
  auto s = Script::load("probe.lua", R"(
    assert(io == nil and os == nil and debug == nil and package == nil)
    assert(require == nil and load == nil and loadfile == nil and dofile == nil)
    assert(string.dump == nil)
    assert(string and table and math and utf8 and coroutine)
  )");
  EXPECT_TRUE(s) << s.error().message;
  EXPECT_FALSE(Script::load("b.lua", "return load('return 1')()"));
  EXPECT_FALSE(Script::load("c.lua", "x = = 1"));  // a syntax error is a load error
  // Precompiled chunks are refused: text only.
  EXPECT_FALSE(Script::load("d.lua", std::string("\x1bLua", 4)));
}

TEST(Script, ErrorsLoopsAndMemoryBombsDisableTheScriptNotTheCaller) {
  struct Case {
    const char* name;
    const char* text;
    const char* why;
  } cases[] = {
      {"error.lua", "function filter_x(f) error('boom') end", "boom"},
      {"loop.lua", "function filter_x(f) while true do end end", "instruction budget"},
      // pcall cannot save a script from its budget: every instruction raises once it is spent.
      {"sneaky.lua", "function filter_x(f) while true do pcall(function() while true do end end) end end",
       "instruction budget"},
      // The watchdog arms the Lua thread a call began on; a coroutine the script made counts
      // from its start, whether created or wrapped.
      {"co_loop.lua", "function on_packet() coroutine.resume(coroutine.create(function() while true do end end)) end",
       "instruction budget"},
      {"wrap_loop.lua", "function on_packet() coroutine.wrap(function() while true do end end)() end",
       "instruction budget"},
      {"hop.lua",
       "function on_packet() while true do coroutine.wrap(function() for i = 1, 100 do end end)() end end",
       "instruction budget"},
      {"bomb.lua", "function filter_x(f) local t = {} while true do t[#t + 1] = string.rep('x', 4096) .. #t end end",
       "memory cap"},
      {"sneaky_bomb.lua",
       "function filter_x(f) local t = {} while true do pcall(function() t[#t + 1] = string.rep('y', 65536) .. #t end) end end",
       "memory cap"},
  };
  auto frame = tcpFrame("10.0.0.1", "10.0.0.2", 1, 80);
  for (const auto& c : cases) {
    Limits l;
    l.memory_bytes = 4u << 20;
    auto s = Script::load(c.name, c.text, l);
    ASSERT_TRUE(s) << c.name << ": " << s.error().message;
    Effects e;
    EXPECT_EQ((*s)->onPacket(packetOf(frame, "10.0.0.1", "10.0.0.2", 1, 80), e), Verdict::kContinue) << c.name;
    EXPECT_TRUE((*s)->disabled()) << c.name;
    EXPECT_NE((*s)->whyDisabled().find(c.why), std::string::npos) << c.name << ": " << (*s)->whyDisabled();
    EXPECT_LE((*s)->memoryUsed(), l.memory_bytes) << c.name;
    // Disabled: not called again.
    EXPECT_EQ((*s)->onPacket(packetOf(frame, "10.0.0.1", "10.0.0.2", 1, 80), e), Verdict::kContinue);
    EXPECT_EQ((*s)->calls(), 1u) << c.name;
  }
  // The same limits at load time: a script whose top level loops never loads.
  auto top = Script::load("top.lua", "while true do end");
  ASSERT_FALSE(top);
  EXPECT_NE(top.error().message.find("instruction budget"), std::string::npos) << top.error().message;
}

// Finalizers run with Lua's hooks off: nothing could stop one that loops, so none are allowed.
TEST(Script, NoGcMetamethods) {
  auto s = Script::load("gc.lua", "setmetatable({}, {__gc = function() while true do end end})");
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("__gc"), std::string::npos) << s.error().message;
  // Other metatables are fine, and a __gc added later marks nothing.
  auto ok = Script::load("mt.lua", R"(
    local mt = {__index = function() return 7 end}
    local t = setmetatable({}, mt)
    mt.__gc = function() while true do end end
    assert(t.x == 7)
    t = nil
    collectgarbage()
  )");
  EXPECT_TRUE(ok) << ok.error().message;
}

// The watchdog signals the thread making a call; one that blocks every signal (as daemons'
// worker threads often do) is still stopped, and a timer's loop is too.
TEST(Script, LoopsAreStoppedOnThreadsThatBlockSignalsAndInTimers) {
  std::string why;
  std::thread t([&why] {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);
    auto s = Script::load("spin.lua", "function on_packet() while true do end end");
    if (!s) return;
    auto frame = tcpFrame("10.0.0.1", "10.0.0.2", 1, 80);
    Effects e;
    (*s)->onPacket(packetOf(frame, "10.0.0.1", "10.0.0.2", 1, 80), e);
    why = (*s)->whyDisabled();
  });
  t.join();
  EXPECT_NE(why.find("instruction budget"), std::string::npos) << why;

  auto timer = Script::load("tick.lua", "after(0, function() while true do end end)");
  ASSERT_TRUE(timer) << timer.error().message;
  Effects e;
  EXPECT_EQ((*timer)->runTimers(monotonicMs() + 1, e), 1);
  EXPECT_NE((*timer)->whyDisabled().find("timer: instruction budget"), std::string::npos) << (*timer)->whyDisabled();
}

// A packet function is given as many of the packet arguments as it declares; `...` gets all.
TEST(Script, PacketFunctionsGetTheArgumentsTheyDeclare) {
  auto frame = tcpFrame("10.0.0.1", "10.0.0.2", 1234, 80);
  auto p = packetOf(frame, "10.0.0.1", "10.0.0.2", 1234, 80);
  p.cell = 5;
  p.direction = "in";
  struct Case {
    const char* text;
    Verdict want;
  } cases[] = {
      {"function on_packet(pkt, proto) if proto == 6 then return 'drop' end end", Verdict::kDrop},
      {"function on_packet(pkt, ...) if select('#', ...) == 8 and select(8, ...) == true then return 'drop' end end",
       Verdict::kDrop},
      {"function on_packet(pkt, a, b, c, d, e, dport, cell, inbound, extra) "
       "if dport == 80 and cell == 5 and inbound and extra == nil then return 'drop' end end",
       Verdict::kDrop},
      {"function inspect_x(pkt, proto, flags, src) if src == pkt.ip_src_n then return 'reject' end end",
       Verdict::kReject},
  };
  for (const auto& c : cases) {
    auto s = Script::load("args.lua", c.text);
    ASSERT_TRUE(s) << s.error().message;
    Effects e;
    const Verdict v = (*s)->inspectors() > 0 ? (*s)->onInspect(p, e) : (*s)->onPacket(p, e);
    EXPECT_EQ(v, c.want) << c.text << " " << (*s)->whyDisabled();
  }
}

TEST(Script, StateSurvivesBetweenCalls) {
  auto s = Script::load("count.lua", R"(
    seen = {}
    function filter_count(f)
      seen[ip_src] = (seen[ip_src] or 0) + 1
      if seen[ip_src] > 3 then drop(ip_src) end
    end
  )");
  ASSERT_TRUE(s);
  auto frame = tcpFrame("10.0.0.7", "10.0.0.2", 1, 80);
  Verdict v = Verdict::kContinue;
  for (int i = 0; i < 4; ++i) {
    Effects e;
    v = (*s)->onPacket(packetOf(frame, "10.0.0.7", "10.0.0.2", 1, static_cast<std::uint16_t>(80 + i)), e);
  }
  EXPECT_EQ(v, Verdict::kDrop);  // the fourth: drop(ip_src) with no port is every port
}

TEST(Script, OnPacketReadsFieldsOnDemand) {
  auto s = Script::load("fields.lua", R"(
    kept = nil
    function on_packet(pkt)
      kept = pkt
      count("packets")
      if pkt.tcp_flags == 0x02 and pkt.names:find("ads.example", 1, true) then
        log(pkt.app, pkt.cell, pkt.ip_src, pkt.ip_dst, pkt.port_dst, #pkt.frame, pkt.process == "")
        return "reject"
      end
    end
    function filter_later(frame) return "allow" end
  )");
  ASSERT_TRUE(s) << s.error().message;
  auto frame = tcpFrame("10.200.0.2", "192.0.2.9", 40000, 443);
  Packet p = packetOf(frame, "10.200.0.2", "192.0.2.9", 40000, 443);
  p.app = "browser";
  p.cell = 4;
  p.tcp_flags = 0x02;
  FixedNames two("cdn.example,ads.example"), one("cdn.example");
  p.names = &two;
  Effects e;
  EXPECT_EQ((*s)->onPacket(p, e), Verdict::kReject);
  ASSERT_EQ(e.logs.size(), 1u);
  EXPECT_EQ(e.logs[0], "browser 4 10.200.0.2 192.0.2.9 443 54 true");
  ASSERT_EQ(e.counts.size(), 1u);
  EXPECT_EQ(e.counts[0], (std::pair<std::string, std::int64_t>{"packets", 1}));
  p.names = &one;
  Effects e2;
  EXPECT_EQ((*s)->onPacket(p, e2), Verdict::kAllow);  // on_packet said nothing: the filter decides
  // pkt is a view of the packet being handled: one kept from an earlier call shows this one.
  auto kept = Script::load("kept.lua", R"(
    function on_packet(pkt) if old then assert(old.port_dst == pkt.port_dst) end old = pkt end
  )");
  ASSERT_TRUE(kept);
  Effects e3;
  (*kept)->onPacket(p, e3);
  p.port_dst = 8443;
  (*kept)->onPacket(p, e3);
  EXPECT_FALSE((*kept)->disabled()) << (*kept)->whyDisabled();
}

TEST(Script, RunIsACoroutineThatGetsEachPacketFromYield) {
  auto s = Script::load("every_third.lua", R"(
    function run()
      local n = 0
      local pkt = coroutine.yield()
      while true do
        n = n + 1
        local verdict = nil
        if n % 3 == 0 then verdict = "drop" end
        pkt = coroutine.yield(verdict)
      end
    end
  )");
  ASSERT_TRUE(s) << s.error().message;
  auto frame = tcpFrame("10.0.0.1", "10.0.0.2", 1, 80);
  std::string seen;
  for (int i = 0; i < 6; ++i) {
    Effects e;
    seen += verdictName((*s)->onPacket(packetOf(frame, "10.0.0.1", "10.0.0.2", 1, 80), e));
    seen += ' ';
  }
  EXPECT_EQ(seen, "continue continue drop continue continue drop ");
  EXPECT_FALSE(Script::load("done.lua", "function run() end"));  // never waits for a packet
  auto spin = Script::load("spin.lua", "function run() coroutine.yield() while true do end end");
  ASSERT_TRUE(spin);
  Effects e;
  (*spin)->onPacket(packetOf(frame, "10.0.0.1", "10.0.0.2", 1, 80), e);
  EXPECT_TRUE((*spin)->disabled());
  EXPECT_NE((*spin)->whyDisabled().find("run: instruction budget"), std::string::npos) << (*spin)->whyDisabled();
}


TEST(Script, FlowVerbsDescribeMatchActionPriorityTimeoutsAndCookie) {
  auto s = Script::load("flows.lua", R"(
    function on_packet(pkt)
      drop{ip_src = pkt.ip_src, proto = "tcp", port_dst = 22, priority = 7, hard = 60, cookie = 42}
      allow{ip_src = "10.1.0.0/16", idle = 1.5}
      limit{cell = pkt.cell, kbps = 800, burst = 100}
      flow{ip_dst = "192.0.2.1", proto = UDP, port_dst = 53, action = "drop"}
      remove_flows(41)
    end
  )");
  ASSERT_TRUE(s) << s.error().message;
  auto f = tcpFrame("10.0.0.5", "10.0.0.9", 40000, 80);
  Packet p = packetOf(f, "10.0.0.5", "10.0.0.9", 40000, 80);
  p.cell = 3;
  Effects e;
  // The drop flow is for port 22: this packet (port 80) is not dropped by it.
  EXPECT_EQ((*s)->onPacket(p, e), Verdict::kContinue);
  ASSERT_EQ(e.flows.size(), 4u);
  EXPECT_EQ(e.flows[0].match.str(), "ip_src=10.0.0.5 proto=6 port_dst=22");
  EXPECT_EQ(e.flows[0].priority, 7);
  EXPECT_EQ(e.flows[0].hard, 60);
  EXPECT_EQ(e.flows[0].cookie, 42u);
  EXPECT_EQ(e.flows[1].action, FlowRequest::Action::kAllow);
  EXPECT_EQ(e.flows[1].match.str(), "ip_src=10.1.0.0/16");
  EXPECT_EQ(e.flows[1].idle, 2);  // rounded up: never shorter than asked
  EXPECT_EQ(e.flows[2].action, FlowRequest::Action::kLimit);
  EXPECT_EQ(e.flows[2].match.cell, 3u);
  EXPECT_EQ(e.flows[2].rate_kbps, 800u);
  EXPECT_EQ(e.flows[2].burst, 100u);
  EXPECT_EQ(e.flows[3].match.str(), "ip_dst=192.0.2.1 proto=17 port_dst=53");
  EXPECT_EQ(e.removes, std::vector<std::uint32_t>{41});

  // A drop flow that matches the packet being handled drops it.
  auto t = Script::load("t.lua", "function on_packet(pkt) drop{ip_src = pkt.ip_src} end");
  ASSERT_TRUE(t) << t.error().message;
  Effects e2;
  EXPECT_EQ((*t)->onPacket(p, e2), Verdict::kDrop);
}

TEST(Script, FlowVerbsRefuseWhatCannotBeAFlow) {
  const char* bad[] = {
      "drop{ip_src = '10.0.0.300'}",           "drop{ip_src = '10.0.0.0/33'}",
      "drop{port = 22}",                        "drop{proto = 'sctp'}",
      "drop{proto = ICMP, port_dst = 1}",       "limit{ip_src = '10.0.0.1'}",
      "limit{ip_src = '10.0.0.1', pps = 1, kbps = 1}", "drop{ip_src = '10.0.0.1', pps = 5}",
      "drop{priority = 1000}",                  "drop{hard = -1}",
      "flow{action = 'forward'}",              "remove_flows(-1)",
      "after(1, 'not a function')",             "every(0, function() end)",
  };
  for (const char* line : bad) {
    auto s = Script::load("bad.lua", std::string("function on_packet(pkt) ") + line + " end");
    ASSERT_TRUE(s) << s.error().message;
    auto f = tcpFrame("10.0.0.5", "10.0.0.9", 1, 2);
    Effects e;
    (*s)->onPacket(packetOf(f, "10.0.0.5", "10.0.0.9", 1, 2), e);
    EXPECT_TRUE((*s)->disabled()) << line;
    EXPECT_TRUE(e.flows.empty()) << line;
  }
}

TEST(Script, TimersRunWhenDueAndRepeat) {
  const std::int64_t before = monotonicMs();
  auto s = Script::load("timers.lua", R"(
    ticks, onces = 0, 0
    every(0.01, function() ticks = ticks + 1; count("tick") end)
    local id = after(0, function() onces = onces + 1; drop{ip_src = "192.0.2.7", hard = 5} end)
    local gone = after(0, function() onces = onces + 100 end)
    cancel(gone)
    function on_packet(pkt) log("ticks", ticks, "onces", onces) end
  )");
  ASSERT_TRUE(s) << s.error().message;
  std::int64_t t0 = monotonicMs();
  // The after(0) is the first due: at load time (however slowly the machine loaded it).
  EXPECT_GE((*s)->nextTimer(), before);
  EXPECT_LE((*s)->nextTimer(), t0);
  Effects e;
  EXPECT_EQ((*s)->runTimers(t0 + 1000, e), 2);  // the once and one tick: never a burst
  ASSERT_EQ(e.flows.size(), 1u);
  EXPECT_EQ(e.flows[0].match.str(), "ip_src=192.0.2.7");
  EXPECT_EQ(e.counts.size(), 1u);
  Effects e2;
  EXPECT_EQ((*s)->runTimers(t0 + 2000, e2), 1);  // the repeating one only
  auto f = tcpFrame("10.0.0.5", "10.0.0.9", 1, 2);
  Effects e3;
  (*s)->onPacket(packetOf(f, "10.0.0.5", "10.0.0.9", 1, 2), e3);
  ASSERT_EQ(e3.logs.size(), 1u);
  EXPECT_EQ(e3.logs[0], "ticks 2 onces 1");

  // A timer that fails disables the script.
  auto bad = Script::load("badtimer.lua", "after(0, function() error('boom') end)");
  ASSERT_TRUE(bad) << bad.error().message;
  Effects e4;
  (*bad)->runTimers(monotonicMs() + 1, e4);
  EXPECT_TRUE((*bad)->disabled());
  EXPECT_NE((*bad)->whyDisabled().find("boom"), std::string::npos);
  EXPECT_EQ((*bad)->nextTimer(), -1);
}

TEST(Script, SettingsAreConfigAndLoadEffectsAreKept) {
  auto s = Script::load("cfg.lua", R"(
    assert(config.threshold == 15 and config.window == 2.5 and config.on == true and config.mode == "x")
    drop{ip_src = "198.51.100.1"}
    log("loaded")
  )", Limits{}, {{"threshold", std::int64_t{15}}, {"window", 2.5}, {"on", true}, {"mode", std::string("x")}});
  ASSERT_TRUE(s) << s.error().message;
  Effects e = (*s)->takeLoadEffects();
  ASSERT_EQ(e.flows.size(), 1u);
  ASSERT_EQ(e.logs.size(), 1u);
  EXPECT_TRUE((*s)->takeLoadEffects().empty());
}

TEST(Script, MacsAndDirectionAreFields) {
  auto s = Script::load("mac.lua", "function on_packet(pkt) log(pkt.eth_src, pkt.eth_dst, pkt.direction) end");
  ASSERT_TRUE(s) << s.error().message;
  auto f = tcpFrame("10.0.0.5", "10.0.0.9", 1, 2);
  for (std::size_t i = 0; i < 6; ++i) {
    f[i] = static_cast<char>(0xa0 + i);
    f[6 + i] = static_cast<char>(0x0b);
  }
  Packet p = packetOf(f, "10.0.0.5", "10.0.0.9", 1, 2);
  p.direction = "in";
  Effects e;
  (*s)->onPacket(p, e);
  ASSERT_EQ(e.logs.size(), 1u);
  EXPECT_EQ(e.logs[0], "0b:0b:0b:0b:0b:0b a0:a1:a2:a3:a4:a5 in");
}

TEST(Script, InspectFunctionsSeeEveryPacketApartFromOnPacket) {
  auto s = Script::load("inspect.lua", R"(
    function on_packet(pkt) count("first") end
    function inspect_b(pkt) count("b") if pkt.port_dst == 6667 then return "drop" end end
    function inspect_a(pkt) count("a") if #pkt.frame > 1000 then return "reject" end end
  )");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ((*s)->inspectors(), 2u);
  auto f = tcpFrame("10.0.0.5", "10.0.0.9", 40000, 6667);
  Effects e;
  EXPECT_EQ((*s)->onInspect(packetOf(f, "10.0.0.5", "10.0.0.9", 40000, 6667), e), Verdict::kDrop);
  ASSERT_EQ(e.counts.size(), 2u);
  EXPECT_EQ(e.counts[0].first, "a");  // in name order
  EXPECT_EQ(e.counts[1].first, "b");
  auto g = tcpFrame("10.0.0.5", "10.0.0.9", 40000, 80);
  Effects e2;
  EXPECT_EQ((*s)->onInspect(packetOf(g, "10.0.0.5", "10.0.0.9", 40000, 80), e2), Verdict::kContinue);
  auto none = Script::load("none.lua", "function on_packet(pkt) end");
  ASSERT_TRUE(none);
  EXPECT_EQ((*none)->inspectors(), 0u);
  Effects e3;
  EXPECT_EQ((*none)->onInspect(packetOf(g, "10.0.0.5", "10.0.0.9", 40000, 80), e3), Verdict::kContinue);
  EXPECT_EQ((*none)->calls(), 0u);  // nothing to call: not counted
}

}  // namespace
}  // namespace cw::script
