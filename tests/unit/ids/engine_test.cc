// The engine on frames built with the packet builder: what alerts, exactly once, and what
// must not.
#include "ids/engine.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "packet/builder.h"
#include "packet/frame.h"

namespace cw::ids {
namespace {

using packet::buildTcp4;
using packet::buildUdp4;
using packet::kTcpAck;
using packet::kTcpFin;
using packet::kTcpPsh;
using packet::kTcpRst;
using packet::kTcpSyn;

constexpr std::uint64_t kSecond = 1'000'000'000;

Bytes bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

struct Harness {
  std::shared_ptr<const RuleSet> rules;
  LoadReport report;
  std::unique_ptr<Engine> engine;
  std::vector<Alert> alerts;
  std::uint64_t now = kSecond;

  explicit Harness(std::string_view text, Limits limits = {}) {
    auto r = compileRules(text, defaultVariables(), report);
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message);
    for (const Skipped& s : report.skipped)
      ADD_FAILURE() << "skipped line " << s.line << ": " << s.reason;
    rules = *r;
    engine = std::make_unique<Engine>(rules, limits);
  }
  void frame(const std::vector<std::uint8_t>& f) {
    engine->onFrame(f, now, alerts);
    now += 1000;
  }
  std::vector<std::uint32_t> sids() const {
    std::vector<std::uint32_t> out;
    for (const Alert& a : alerts) out.push_back(a.sid);
    return out;
  }
};

using Sids = std::vector<std::uint32_t>;

// One TCP connection, client 10.0.0.2:40000 -> server 93.184.216.34:80 unless told.
struct Conn {
  Harness& h;
  Ip4 client{0x0a000002}, server{0x5db8d822};
  std::uint16_t cport = 40000, sport = 80;
  std::uint32_t cseq = 1000, sseq = 7000;  // next byte each side sends

  void handshake() {
    h.frame(buildTcp4({}, client, server, cport, sport, kTcpSyn, cseq - 1));
    h.frame(buildTcp4({}, server, client, sport, cport, kTcpSyn | kTcpAck, sseq - 1, cseq));
    h.frame(buildTcp4({}, client, server, cport, sport, kTcpAck, cseq, sseq));
  }
  // Sends at the next sequence number and advances it.
  void send(std::string_view data, bool from_client = true) {
    sendAt(from_client ? cseq : sseq, data, from_client);
    (from_client ? cseq : sseq) += static_cast<std::uint32_t>(data.size());
  }
  void sendAt(std::uint32_t seq, std::string_view data, bool from_client = true) {
    if (from_client)
      h.frame(
          buildTcp4({}, client, server, cport, sport, kTcpPsh | kTcpAck, seq, sseq, bytes(data)));
    else
      h.frame(
          buildTcp4({}, server, client, sport, cport, kTcpPsh | kTcpAck, seq, cseq, bytes(data)));
  }
  void flags(std::uint8_t f, bool from_client = true) {
    if (from_client)
      h.frame(buildTcp4({}, client, server, cport, sport, f, cseq, sseq));
    else
      h.frame(buildTcp4({}, server, client, sport, cport, f, sseq, cseq));
  }
};

const char* kExfil =
    "alert tcp $HOME_NET any -> any any (msg:\"cellwall test: exfiltration marker\"; "
    "flow:to_server,established; content:\"CW-EXFIL-TEST\"; sid:9000001; rev:1;)";

TEST(IdsEngine, ContentAcrossTwoSegments) {
  Harness h(kExfil);
  Conn c{h};
  c.handshake();
  c.send("POST /up HTTP/1.1\r\n\r\nCW-EX");
  EXPECT_TRUE(h.alerts.empty());
  c.send("FIL-TEST and more");
  ASSERT_EQ(h.sids(), Sids{9000001});
  const Alert& a = h.alerts[0];
  EXPECT_EQ(a.rev, 1u);
  EXPECT_EQ(a.msg, "cellwall test: exfiltration marker");
  EXPECT_EQ(a.src, IpAddr(c.client));
  EXPECT_EQ(a.dst, IpAddr(c.server));
  EXPECT_EQ(a.sport, 40000);
  EXPECT_EQ(a.dport, 80);
  EXPECT_EQ(a.proto, 6);
  EXPECT_TRUE(a.from_client);
  c.send("CW-EXFIL-TEST again");  // once per flow direction
  EXPECT_EQ(h.alerts.size(), 1u);
  EXPECT_EQ(h.engine->stats().alerts, 1u);
}

TEST(IdsEngine, DirectionAndEstablished) {
  Harness h(kExfil);
  Conn c{h};
  c.handshake();
  c.send("CW-EXFIL-TEST", false);  // server to client: not to_server
  EXPECT_TRUE(h.alerts.empty());
  // Data on a SYN (fast open): the flow is not established yet.
  Conn d{h};
  d.cport = 40001;
  h.frame(
      buildTcp4({}, d.client, d.server, d.cport, d.sport, kTcpSyn, 99, 0, bytes("CW-EXFIL-TEST")));
  EXPECT_TRUE(h.alerts.empty());
  // Picked up mid-stream: the first sender is the client and the flow counts as established.
  Conn e{h};
  e.cport = 40002;
  e.send("xx CW-EXFIL-TEST");
  EXPECT_EQ(h.sids(), Sids{9000001});
}

TEST(IdsEngine, OutOfOrderSegments) {
  Harness h(kExfil);
  Conn c{h};
  c.handshake();
  c.sendAt(c.cseq + 7, "L-TEST");
  c.sendAt(c.cseq + 13, "...");
  EXPECT_TRUE(h.alerts.empty());
  EXPECT_EQ(h.engine->stats().out_of_order, 2u);
  c.sendAt(c.cseq, "CW-EXFIL");  // overlaps the held segment by one byte
  EXPECT_EQ(h.sids(), Sids{9000001});
}

// Copies reach the monitor port from several CPUs and can arrive out of order: a SYN that comes
// after its connection's first data is that connection's, not a new one on the same tuple.
TEST(IdsEngine, ASynArrivingAfterItsOwnDataDoesNotRestartTheFlow) {
  Harness h(kExfil);
  Conn c{h};
  c.send("x");                                                                   // data first,
  h.frame(buildTcp4({}, c.client, c.server, c.cport, c.sport, kTcpSyn, c.cseq - 2));  // its SYN after
  c.flags(kTcpAck);
  c.send("y");
  c.send("exfil: CW-EXFIL-TEST");
  EXPECT_EQ(h.sids(), Sids{9000001});
  EXPECT_EQ(h.engine->stats().gaps, 0u);
  // A SYN from far away on the same tuple is a new connection: inspection starts over.
  h.alerts.clear();
  h.frame(buildTcp4({}, c.client, c.server, c.cport, c.sport, kTcpSyn, c.cseq + 5'000'000));
  c.cseq += 5'000'001;
  c.flags(kTcpAck);
  c.send("again CW-EXFIL-TEST");
  EXPECT_EQ(h.sids(), Sids{9000001});
}

TEST(IdsEngine, RetransmissionIsNotInspectedTwice) {
  Harness h(R"(alert tcp any any -> any any (content:"abcabc"; sid:1;))");
  Conn c{h};
  c.handshake();
  c.send("abc");
  c.sendAt(c.cseq - 3, "abc");  // a retransmission must not make "abcabc"
  EXPECT_TRUE(h.alerts.empty());
  EXPECT_EQ(h.engine->stats().trimmed_bytes, 3u);
  c.sendAt(c.cseq - 1, "cxyz");  // overlapping by one: stream is "abcxyz"
  EXPECT_TRUE(h.alerts.empty());
  EXPECT_EQ(h.engine->stats().stream_bytes, 6u);
}

TEST(IdsEngine, NocaseOffsetDepth) {
  Harness h(
      "alert tcp any any -> any any (content:\"secret\"; nocase; sid:1;)\n"
      "alert tcp any any -> any any (content:\"GET\"; depth:3; sid:2;)\n"
      "alert tcp any any -> any any (content:\"abc\"; offset:4; depth:5; sid:3;)\n");
  Conn c1{h};
  c1.handshake();
  c1.send("xGET my SeCrEt");  // GET not within the first 3 bytes
  EXPECT_EQ(h.sids(), Sids{1});
  h.alerts.clear();
  Conn c2{h};
  c2.cport = 2;
  c2.handshake();
  c2.send("GET /");
  c2.send("..abc");  // abc ends at 10: past offset 4 + depth 5
  EXPECT_EQ(h.sids(), Sids{2});
  h.alerts.clear();
  Conn c3{h};
  c3.cport = 3;
  c3.send("xxxxabc");  // at 4..7: inside [4, 9)
  EXPECT_EQ(h.sids(), Sids{3});
  h.alerts.clear();
  Conn c4{h};
  c4.cport = 4;
  c4.send("xxxxxxxabc");  // ends at 10 > 9
  EXPECT_TRUE(h.alerts.empty());
}

TEST(IdsEngine, DistanceWithin) {
  Harness h(
      R"(alert tcp any any -> any any (content:"USER"; content:"root"; distance:1; within:10; sid:7;))");
  struct Case {
    const char* data;
    bool alerts;
  } cases[] = {
      {"USER root\r\n", true},
      {"USERroot\r\n", false},                      // distance 1 not met
      {"USER                    root\r\n", false},  // beyond within
      {"root USER\r\n", false},                     // wrong order
      {"USER USER    root", true},                  // only relative to the second USER
  };
  std::uint16_t port = 100;
  for (const Case& k : cases) {
    h.alerts.clear();
    Conn c{h};
    c.cport = port++;
    c.handshake();
    c.send(k.data);
    EXPECT_EQ(h.alerts.size(), k.alerts ? 1u : 0u) << k.data;
  }
}

TEST(IdsEngine, NegatedContent) {
  Harness h(R"(alert tcp any any -> any 80 (content:"GET "; depth:4; content:!"Host:"; sid:8;))");
  Conn c1{h};
  c1.handshake();
  c1.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_TRUE(h.alerts.empty());
  Conn c2{h};
  c2.cport = 2;
  c2.handshake();
  c2.send("GET / HTTP/1.0\r\n\r\n");
  EXPECT_EQ(h.sids(), Sids{8});
}

TEST(IdsEngine, PcreInHyperscanAcrossSegments) {
  Harness h(R"(alert tcp any any -> any any (pcre:"/evil\d{3}x/i"; sid:9;))");
  Conn c{h};
  c.handshake();
  c.send("... EVIL1");
  c.send("23X ...");
  EXPECT_EQ(h.sids(), Sids{9});
}

TEST(IdsEngine, PcreFallbackToPcre2) {
  // A backreference: Hyperscan refuses it, PCRE2 runs it on the stream window.
  Harness h(R"(alert tcp any any -> any any (content:"go"; pcre:"/(ab)\1/"; sid:10;))");
  Conn c1{h};
  c1.handshake();
  c1.send("go abxab");
  EXPECT_TRUE(h.alerts.empty());
  c1.send(" ababy");
  EXPECT_EQ(h.sids(), Sids{10});
  // Without a content, judged on each packet with data.
  Harness g(R"(alert udp any any -> any any (pcre:"/(x+)y\1/"; sid:11;))");
  g.frame(buildUdp4({}, Ip4{1}, Ip4{2}, 5, 6, bytes("xxyxx")));
  g.frame(buildUdp4({}, Ip4{1}, Ip4{2}, 5, 6, bytes("xyz")));
  EXPECT_EQ(g.sids(), Sids{11});
}

TEST(IdsEngine, DsizeAndFlags) {
  Harness h(
      "alert tcp any any -> any 22 (msg:\"syn\"; flags:S; sid:20;)\n"
      "alert tcp any any -> any any (msg:\"big\"; content:\"A\"; dsize:>8; sid:21;)\n"
      "alert tcp any any -> any any (msg:\"xmas\"; flags:FPU; sid:22;)\n");
  Conn c{h};
  c.sport = 22;
  c.handshake();  // the SYN alerts; the SYN-ACK goes to port 40000 and is not exactly S
  EXPECT_EQ(h.sids(), Sids{20});
  h.alerts.clear();
  c.send("AAAA");
  EXPECT_TRUE(h.alerts.empty());
  c.send("AAAAAAAAA");  // 9 bytes; the rule already saw A but dsize failed, so it is judged again
  EXPECT_EQ(h.sids(), Sids{21});
  h.alerts.clear();
  c.flags(packet::kTcpFin | kTcpPsh | packet::kTcpUrg);
  EXPECT_EQ(h.sids(), Sids{22});
}

TEST(IdsEngine, UdpIsPerDatagram) {
  Harness h(R"(alert udp any any -> any 53 (content:"evil"; content:"com"; distance:0; sid:30;))");
  h.frame(buildUdp4({}, Ip4{1}, Ip4{2}, 5353, 53, bytes("xxevi")));
  h.frame(buildUdp4({}, Ip4{1}, Ip4{2}, 5353, 53, bytes("lcom")));
  EXPECT_TRUE(h.alerts.empty());
  h.frame(buildUdp4({}, Ip4{1}, Ip4{2}, 5353, 53,
                    bytes("\x04"
                          "evil\x03"
                          "com")));
  h.frame(buildUdp4({}, Ip4{1}, Ip4{2}, 5353, 53,
                    bytes("\x04"
                          "evil\x03"
                          "com")));  // again
  h.frame(buildUdp4({}, Ip4{1}, Ip4{2}, 5353, 54,
                    bytes("\x04"
                          "evil\x03"
                          "com")));  // other port
  EXPECT_EQ(h.sids(), (Sids{30, 30}));
}

TEST(IdsEngine, IpRuleSeesTcpAndUdpPayloads) {
  Harness h(R"(alert ip any any -> any any (content:"MARK"; sid:31;))");
  h.frame(buildUdp4({}, Ip4{1}, Ip4{2}, 5, 6, bytes("a MARK")));
  Conn c{h};
  c.handshake();
  c.send("MARK");
  EXPECT_EQ(h.sids(), (Sids{31, 31}));
}

TEST(IdsEngine, ThresholdLimitAndDetectionFilter) {
  Harness h(
      "alert udp any any -> any any (content:\"L\"; threshold:type limit, track by_src, count 2, "
      "seconds 60; sid:40;)\n"
      "alert udp any any -> any any (content:\"D\"; detection_filter:track by_dst, count 2, "
      "seconds 60; "
      "sid:41;)\n"
      "alert udp any any -> any any (content:\"T\"; threshold:type threshold, track by_rule, count "
      "3, "
      "seconds 60; sid:42;)\n"
      "alert udp any any -> any any (content:\"B\"; threshold:type both, track by_src, count 2, "
      "seconds 60; sid:43;)\n");
  for (int i = 0; i < 7; ++i) h.frame(buildUdp4({}, Ip4{1}, Ip4{2}, 5, 6, bytes("LDTB")));
  // limit: 1st, 2nd. detection_filter: 3rd..7th. threshold: 3rd, 6th. both: 2nd.
  EXPECT_EQ(h.sids(), (Sids{40, 40, 43, 41, 42, 41, 41, 41, 42, 41}));
  EXPECT_EQ(h.engine->stats().alerts_suppressed, 28u - 10u);
  h.alerts.clear();
  h.frame(buildUdp4({}, Ip4{9}, Ip4{2}, 5, 6, bytes("L")));  // another source: its own window
  h.now += 61 * kSecond;
  h.frame(buildUdp4({}, Ip4{1}, Ip4{2}, 5, 6, bytes("L")));  // a new window
  EXPECT_EQ(h.sids(), (Sids{40, 40}));
}

TEST(IdsEngine, FlowExpiryCloseAndTableBound) {
  Limits l;
  l.max_flows = 2;
  l.idle_timeout_ns = 10 * kSecond;
  Harness h(kExfil, l);
  Conn a{h};
  a.handshake();
  a.send("CW-EXFIL");
  h.now += 11 * kSecond;
  h.engine->expire(h.now);
  EXPECT_EQ(h.engine->stats().flows, 0u);
  EXPECT_EQ(h.engine->stats().flows_expired, 1u);
  a.send("-TEST");  // a new flow picked up mid-stream: the first half is gone
  EXPECT_TRUE(h.alerts.empty());

  for (std::uint16_t p = 1; p <= 3; ++p) {
    Conn c{h};
    c.cport = p;
    c.handshake();
  }
  Stats s = h.engine->stats();
  EXPECT_EQ(s.flows, 2u);
  EXPECT_EQ(s.flow_evictions, 2u);

  Conn f{h};
  f.cport = 3;
  f.flags(kTcpFin | kTcpAck);
  f.flags(kTcpFin | kTcpAck, false);
  EXPECT_EQ(h.engine->stats().flows_closed, 1u);
  f.flags(kTcpAck);  // the last ACK of the close makes no flow
  Conn r{h};
  r.cport = 2;
  r.flags(kTcpRst);
  EXPECT_EQ(h.engine->stats().flows, 0u);
  EXPECT_EQ(h.engine->stats().flows_closed, 2u);
}

TEST(IdsEngine, GapEndsInspectionAndDepthLimits) {
  Limits l;
  l.ooo_limit = 8;
  l.stream_depth = 20;
  Harness h(kExfil, l);
  Conn c{h};
  c.handshake();
  c.sendAt(c.cseq + 100, "123456789");  // 9 bytes after a hole: over the limit
  EXPECT_EQ(h.engine->stats().gaps, 1u);
  c.send("CW-EXFIL-TEST");
  EXPECT_TRUE(h.alerts.empty());

  Conn d{h};
  d.cport = 2;
  d.handshake();
  d.send("0123456789");
  d.send("CW-EXFIL-TEST");  // bytes 10..23: the marker ends past the 20 inspected
  EXPECT_TRUE(h.alerts.empty());
  EXPECT_EQ(h.engine->stats().depth_reached, 1u);
  EXPECT_EQ(h.engine->stats().stream_bytes, 20u);
}

TEST(IdsEngine, HeaderAddressesPortsAndBidirectional) {
  Variables v = defaultVariables();
  v["HOME_NET"] = "10.0.0.0/8";
  LoadReport report;
  auto rules = compileRules(
      "alert tcp $HOME_NET any -> !$HOME_NET 443 (content:\"x\"; sid:50;)\n"
      "alert udp 10.0.0.9 any <> any 53 (content:\"q\"; sid:51;)\n",
      v, report);
  ASSERT_TRUE(rules.has_value());
  EXPECT_EQ(report.loaded, 2u);
  Engine e(*rules);
  std::vector<Alert> out;
  auto udp = [&](std::uint32_t s, std::uint16_t sp, std::uint32_t d, std::uint16_t dp) {
    e.onFrame(buildUdp4({}, Ip4{s}, Ip4{d}, sp, dp, bytes("q")), 1, out);
  };
  udp(0x0a000009, 1000, 0x08080808, 53);  // forward
  udp(0x08080808, 53, 0x0a000009, 1000);  // reverse, through <>
  udp(0x0a000008, 1000, 0x08080808, 53);  // other host
  e.onFrame(buildTcp4({}, Ip4{0x0a000001}, Ip4{0x0a000002}, 1, 443, kTcpAck, 0, 0, bytes("x")), 1,
            out);
  e.onFrame(buildTcp4({}, Ip4{0x0a000001}, Ip4{0x01010101}, 1, 443, kTcpAck, 0, 0, bytes("x")), 1,
            out);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].sid, 51u);
  EXPECT_EQ(out[1].sid, 51u);
  EXPECT_FALSE(out[1].from_client);
  EXPECT_EQ(out[2].sid, 50u);
}

TEST(IdsEngine, Ipv6) {
  Harness h(kExfil);
  auto c = *Ip6::parse("2001:db8::2"), s = *Ip6::parse("2001:db8::1");
  h.frame(packet::buildTcp6({}, c, s, 4000, 443, kTcpSyn, 10));
  h.frame(packet::buildTcp6({}, s, c, 443, 4000, kTcpSyn | kTcpAck, 50, 11));
  h.frame(
      packet::buildTcp6({}, c, s, 4000, 443, kTcpAck | kTcpPsh, 11, 51, bytes("CW-EXFIL-TEST")));
  ASSERT_EQ(h.sids(), Sids{9000001});
  EXPECT_EQ(h.alerts[0].src, IpAddr(c));
}

TEST(IdsEngine, BadFramesAreCounted) {
  Harness h(kExfil);
  const std::uint8_t junk[] = {1, 2, 3};
  h.engine->onFrame(junk, 1, h.alerts);
  h.frame(packet::buildArp({}, packet::kArpRequest, {}, Ip4{1}, {}, Ip4{2}));
  Stats s = h.engine->stats();
  EXPECT_EQ(s.parse_errors, 1u);
  EXPECT_EQ(s.not_ip, 1u);
  EXPECT_EQ(s.frames, 2u);
}

TEST(IdsCompile, SkipsWhatNothingCompilesAndCountsTheRest) {
  LoadReport report;
  auto rules = compileRules(
      "alert tcp any any -> any any (pcre:\"/(unclosed/\"; sid:1;)\n"
      "alert tcp any any -> any any (content:\"ok\"; sid:2;)\n"
      "alert tcp any any -> any any (isdataat:1; sid:3;)\n",
      defaultVariables(), report);
  ASSERT_TRUE(rules.has_value());
  EXPECT_EQ(report.loaded, 1u);
  EXPECT_EQ((*rules)->size(), 1u);
  ASSERT_EQ(report.skipped.size(), 2u);
  EXPECT_EQ(report.skipped[0].sid, 3u);  // the parser's skips come first
  EXPECT_EQ(report.skipped[1].sid, 1u);
  EXPECT_EQ(report.skipped[1].keyword, "pcre");
  LoadReport empty;
  auto none = compileRules("# nothing\n", defaultVariables(), empty);
  ASSERT_TRUE(none.has_value());
  EXPECT_EQ((*none)->size(), 0u);
  Engine e(*none);
  std::vector<Alert> out;
  e.onFrame(buildUdp4({}, Ip4{1}, Ip4{2}, 1, 2, bytes("x")), 1, out);
  EXPECT_TRUE(out.empty());
}

TEST(IdsCompile, ShippedRulesLoadWhole) {
  std::ifstream in(std::string(CW_SOURCE_DIR) + "/rules/ids/cellwall.rules");
  ASSERT_TRUE(in) << "rules/ids/cellwall.rules";
  std::stringstream text;
  text << in.rdbuf();
  LoadReport report;
  auto rules = compileRules(text.str(), defaultVariables(), report);
  ASSERT_TRUE(rules.has_value());
  for (const Skipped& s : report.skipped) ADD_FAILURE() << "line " << s.line << ": " << s.reason;
  EXPECT_GE(report.loaded, 5u);
  Engine e(*rules);
  std::vector<Alert> out;
  Ip4 c{0x0a000002}, s{0x5db8d822};
  e.onFrame(buildTcp4({}, c, s, 40000, 80, kTcpSyn, 0), 1, out);
  e.onFrame(buildTcp4({}, s, c, 80, 40000, kTcpSyn | kTcpAck, 0, 1), 2, out);
  e.onFrame(
      buildTcp4({}, c, s, 40000, 80, kTcpAck | kTcpPsh, 1, 1, bytes("data CW-EXFIL-TEST data")), 3,
      out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].sid, 9000001u);
}

}  // namespace
}  // namespace cw::ids

namespace cw::ids {
namespace {

TEST(IdsEngine, PcreFlagsExtendedAnchoredNegated) {
  Harness h(
      "alert udp any any -> any any (pcre:\"/ev il \\d/x\"; sid:60;)\n"
      "alert udp any any -> any any (pcre:\"/abc/A\"; sid:61;)\n"
      "alert udp any any -> any any (content:\"zz\"; pcre:!\"/q+/\"; sid:62;)\n");
  h.frame(buildUdp4({}, Ip4{1}, Ip4{2}, 5, 6, bytes("an evil1 abc")));  // 60; abc not at start
  h.frame(buildUdp4({}, Ip4{1}, Ip4{2}, 5, 6, bytes("abc zz")));         // 61, 62
  h.frame(buildUdp4({}, Ip4{1}, Ip4{2}, 5, 6, bytes("zz qq")));          // q present: nothing
  EXPECT_EQ(h.sids(), (Sids{60, 61, 62}));
}

}  // namespace
}  // namespace cw::ids
