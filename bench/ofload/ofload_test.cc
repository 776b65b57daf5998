// cw-ofload's pure parts: flag parsing, the simulated switch driven by encoded controller
// messages, and the latency summary. No sockets.
#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "ofp/codec.h"
#include "options.h"
#include "packet/builder.h"
#include "packet/frame.h"
#include "report.h"
#include "sim_switch.h"

namespace cw::ofload {
namespace {

using Buffer = std::vector<std::uint8_t>;

Options parse(std::vector<std::string> args) {
  bool help = false;
  auto o = parseOptions(args, help);
  EXPECT_TRUE(o) << (o ? "" : o.error().message);
  return o ? *o : Options{};
}

std::string parseError(std::vector<std::string> args) {
  bool help = false;
  auto o = parseOptions(args, help);
  return o ? "" : o.error().message;
}

// Decodes every message in `out`.
std::vector<ofp::Decoded> decodeAll(const Buffer& out) {
  std::vector<ofp::Decoded> msgs;
  std::size_t at = 0;
  while (at < out.size()) {
    Bytes rest(out.data() + at, out.size() - at);
    auto len = ofp::frameLength(rest);
    EXPECT_TRUE(len && *len <= rest.size());
    if (!len || *len > rest.size()) break;
    auto d = ofp::decode(rest.first(*len));
    EXPECT_TRUE(d);
    if (!d) break;
    msgs.push_back(*d);
    at += *len;
  }
  return msgs;
}

class SimSwitchTest : public ::testing::Test {
 protected:
  // Feeds one controller message; returns the switch's replies.
  std::vector<ofp::Decoded> feed(const ofp::Message& m, std::int64_t now = 0, std::uint32_t xid = 9) {
    Buffer in, out;
    ofp::encode(ofp::Version::kOf13, xid, m, in);
    auto used = sw_->consume(Bytes(in), now, out, rtts_);
    EXPECT_TRUE(used);
    if (used) {
      EXPECT_EQ(*used, in.size());
    }
    out_ = out;
    return decodeAll(out);
  }
  void makeSwitch() { sw_ = std::make_unique<SimSwitch>(opts_, 0x42); }
  void handshake() {
    makeSwitch();
    feed(ofp::FeaturesRequest{});
    feed(ofp::BarrierRequest{});
  }
  std::vector<ofp::PacketIn> sendLoad(std::size_t window, std::int64_t now = 100) {
    Buffer out;
    sw_->fillWindow(window, now, out);
    sent_ = out;  // PacketIn::data points into it
    std::vector<ofp::PacketIn> pins;
    for (auto& d : decodeAll(sent_)) pins.push_back(std::get<ofp::PacketIn>(d.msg));
    return pins;
  }
  static ofp::FlowMod flowFor(std::uint16_t tcp_src, std::uint16_t tcp_dst) {
    ofp::FlowMod fm;
    fm.table_id = 1;
    fm.match.ethType(packet::kEthIpv4).ipProto(packet::kProtoTcp).tcpSrc(tcp_src).tcpDst(tcp_dst);
    fm.instructions.push_back(ofp::InstrApplyActions{{ofp::ActionOutput{2}}});
    return fm;
  }

  Options opts_;
  std::unique_ptr<SimSwitch> sw_;
  std::vector<std::int64_t> rtts_;
  Buffer out_, sent_;
};

TEST(OfloadOptions, DefaultsAndFlags) {
  Options d = parse({});
  EXPECT_EQ(d.host, "127.0.0.1");
  EXPECT_EQ(d.port, "6653");
  EXPECT_EQ(d.mode, Mode::kThroughput);

  Options o = parse({"--controller", "10.0.0.1:7000", "--switches=8", "--window", "32",
                     "--src-ip-step", "0.1.0.0", "--dpid-base", "0x100", "--complete-on",
                     "packet_out", "--json", "--seconds", "2.5"});
  EXPECT_EQ(o.host, "10.0.0.1");
  EXPECT_EQ(o.port, "7000");
  EXPECT_EQ(o.switches, 8u);
  EXPECT_EQ(o.window, 32u);
  EXPECT_EQ(o.src_ip_step, 0x00010000u);
  EXPECT_EQ(o.dpid_base, 0x100u);
  EXPECT_EQ(o.complete_on, CompleteOn::kPacketOut);
  EXPECT_TRUE(o.json);
  EXPECT_DOUBLE_EQ(o.seconds, 2.5);

  EXPECT_EQ(parse({"--controller", "[::1]:6633"}).host, "::1");
  EXPECT_EQ(parse({"--mode", "latency", "--window", "50"}).window, 1u);
}

TEST(OfloadOptions, WaitDefaultsToBlockingOnlyWhereOneSocketIsAwaited) {
  EXPECT_EQ(parse({}).wait, Wait::kEpoll);
  EXPECT_EQ(parse({"--mode", "latency", "--switches", "1"}).wait, Wait::kBlock);
  EXPECT_EQ(parse({"--mode", "latency", "--switches", "4"}).wait, Wait::kEpoll);
  EXPECT_EQ(parse({"--mode", "latency", "--switches", "1", "--wait", "epoll"}).wait, Wait::kEpoll);
  EXPECT_EQ(parse({"--switches", "4", "--wait", "busy"}).wait, Wait::kBusy);
  EXPECT_NE(parseError({"--switches", "2", "--wait", "block"}).find("--switches 1"),
            std::string::npos);
  EXPECT_NE(parseError({"--wait", "spin"}).find("epoll, block or busy"), std::string::npos);
}

TEST(OfloadOptions, RejectsBadValuesByName) {
  EXPECT_NE(parseError({"--switches", "0"}).find("--switches"), std::string::npos);
  EXPECT_NE(parseError({"--window", "40000"}).find("1..32768"), std::string::npos);
  EXPECT_NE(parseError({"--mode", "fast"}).find("throughput or latency"), std::string::npos);
  EXPECT_NE(parseError({"--src-mac-base", "zz"}).find("MAC"), std::string::npos);
  EXPECT_NE(parseError({"--bogus"}).find("unknown option"), std::string::npos);
  EXPECT_NE(parseError({"--seconds"}).find("missing value"), std::string::npos);
  EXPECT_NE(parseError({"--controller", "h:99999"}).find("HOST:PORT"), std::string::npos);
  EXPECT_NE(parseError({"--dst-port", "65535", "--dst-port-count", "2"}), "");
  bool help = false;
  ASSERT_TRUE(parseOptions({"--help"}, help));
  EXPECT_TRUE(help);
}

TEST_F(SimSwitchTest, PlaysTheSwitchSideOfTheHandshake) {
  opts_.ports = 3;
  opts_.port_prefix = "cw-p";
  makeSwitch();
  Buffer hello;
  sw_->start(hello);
  auto h = decodeAll(hello);
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0].header.version, 4);
  EXPECT_NE(std::get<ofp::Hello>(h[0].msg).version_bitmap & (1u << 4), 0u);

  EXPECT_FALSE(sw_->handshakeDone());
  auto r = feed(ofp::FeaturesRequest{}, 0, 77);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].header.xid, 77u);
  EXPECT_EQ(std::get<ofp::FeaturesReply>(r[0].msg).datapath_id, 0x42u);
  EXPECT_TRUE(sw_->handshakeDone());

  r = feed(ofp::MultipartRequest{0, ofp::PortDescRequest{}});
  ASSERT_EQ(r.size(), 1u);
  const auto& ports = std::get<std::vector<ofp::PortDesc>>(std::get<ofp::MultipartReply>(r[0].msg).body);
  ASSERT_EQ(ports.size(), 3u);
  EXPECT_EQ(ports[0].port_no, 1u);
  EXPECT_EQ(ports[2].name, "cw-p3");

  r = feed(ofp::MultipartRequest{0, ofp::FlowStatsRequest{}});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_TRUE(std::get<std::vector<ofp::FlowStats>>(std::get<ofp::MultipartReply>(r[0].msg).body).empty());

  r = feed(ofp::Echo{false, {1, 2, 3}});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(std::get<ofp::Echo>(r[0].msg), (ofp::Echo{true, {1, 2, 3}}));

  EXPECT_TRUE(feed(ofp::SwitchConfig{true, 0, 0xffff}).empty());
  r = feed(ofp::GetConfigRequest{});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(std::get<ofp::SwitchConfig>(r[0].msg), (ofp::SwitchConfig{false, 0, 0xffff}));

  r = feed(ofp::RoleMsg{false, ofp::ControllerRole::kMaster, 5});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(std::get<ofp::RoleMsg>(r[0].msg), (ofp::RoleMsg{true, ofp::ControllerRole::kMaster, 5}));

  EXPECT_FALSE(sw_->loadReady(0));
  r = feed(ofp::BarrierRequest{}, 0, 88);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<ofp::BarrierReply>(r[0].msg));
  EXPECT_TRUE(sw_->loadReady(0));
}

TEST_F(SimSwitchTest, StartsAfterSettleTimeWithoutBarrier) {
  opts_.settle_ms = 5;
  makeSwitch();
  feed(ofp::FeaturesRequest{}, 1'000'000);
  EXPECT_FALSE(sw_->loadReady(5'999'999));
  EXPECT_TRUE(sw_->loadReady(6'000'000));
}

TEST_F(SimSwitchTest, PacketInsAreNewConnectionsFromTheCellOnThePort) {
  opts_.ports = 2;
  opts_.table_id = 3;
  opts_.src_ip_base = *Ip4::parse("10.201.0.2");
  opts_.src_ip_step = 0x00010000;
  opts_.dst_ip = *Ip4::parse("93.184.216.34");
  opts_.dst_port = 8443;
  handshake();
  auto pins = sendLoad(4);
  ASSERT_EQ(pins.size(), 4u);
  EXPECT_EQ(sw_->outstanding(), 4u);
  std::set<std::uint16_t> sports;
  for (std::size_t i = 0; i < pins.size(); ++i) {
    const auto& pi = pins[i];
    EXPECT_EQ(pi.reason, ofp::PacketInReason::kNoMatch);
    EXPECT_EQ(pi.table_id, 3);
    EXPECT_EQ(pi.buffer_id, ofp::kNoBuffer);
    EXPECT_EQ(pi.inPort(), 1 + i % 2);
    EXPECT_EQ(pi.total_len, pi.data.size());
    auto f = packet::parseFrame(pi.data);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->l4, packet::L4::kTcp);
    EXPECT_EQ(f->tcp_flags, packet::kTcpSyn);
    EXPECT_EQ(f->eth_src, MacAddr::from_u64(opts_.src_mac_base.as_u64() + i % 2));
    EXPECT_EQ(f->ip_src.str(), i % 2 == 0 ? "10.201.0.2" : "10.202.0.2");
    EXPECT_EQ(f->ip_dst.str(), "93.184.216.34");
    EXPECT_EQ(f->dst_port, 8443);
    sports.insert(f->src_port);
  }
  EXPECT_EQ(sports.size(), 4u);
  EXPECT_EQ(sendLoad(4).size(), 0u);  // window full
}

TEST_F(SimSwitchTest, FlowModAddNamingTheConnectionCompletesTheSetup) {
  handshake();
  auto pins = sendLoad(3, 1000);
  auto f0 = packet::parseFrame(pins[0].data);
  auto f1 = packet::parseFrame(pins[1].data);
  ASSERT_TRUE(f0 && f1);

  // Table setup without ports and unrelated connections complete nothing.
  ofp::FlowMod miss;
  feed(miss, 2000);
  feed(flowFor(1, 2), 2000);
  ofp::FlowMod del = flowFor(f0->src_port, f0->dst_port);
  del.command = ofp::FlowModCommand::kDelete;
  feed(del, 2000);
  EXPECT_TRUE(rtts_.empty());

  feed(flowFor(f0->src_port, f0->dst_port), 5000);  // forward flow
  ASSERT_EQ(rtts_.size(), 1u);
  EXPECT_EQ(rtts_[0], 4000);
  feed(flowFor(f1->dst_port, f1->src_port), 6000);  // reverse flow
  ASSERT_EQ(rtts_.size(), 2u);
  EXPECT_EQ(sw_->counters().setups, 2u);
  EXPECT_EQ(sw_->counters().flow_mods, 5u);
  EXPECT_EQ(sw_->outstanding(), 1u);
  EXPECT_EQ(sendLoad(3).size(), 2u);
}

TEST_F(SimSwitchTest, FlowsPerSetupWaitsForThePair) {
  opts_.flows_per_setup = 2;
  handshake();
  auto pins = sendLoad(1);
  auto f = packet::parseFrame(pins[0].data);
  ASSERT_TRUE(f);
  feed(flowFor(f->dst_port, f->src_port));
  EXPECT_TRUE(rtts_.empty());
  feed(flowFor(f->src_port, f->dst_port));
  EXPECT_EQ(rtts_.size(), 1u);
}

TEST_F(SimSwitchTest, PacketOutCompletesWhenAskedTo) {
  opts_.complete_on = CompleteOn::kPacketOut;
  handshake();
  auto pins = sendLoad(2);
  auto f = packet::parseFrame(pins[1].data);
  ASSERT_TRUE(f);
  feed(flowFor(f->src_port, f->dst_port));
  EXPECT_TRUE(rtts_.empty());
  ofp::PacketOut po;
  po.in_port = pins[1].inPort();
  po.actions.push_back(ofp::ActionOutput{9});
  po.data.assign(pins[1].data.begin(), pins[1].data.end());
  feed(po);
  EXPECT_EQ(rtts_.size(), 1u);
  EXPECT_EQ(sw_->counters().packet_outs, 1u);
}

TEST_F(SimSwitchTest, RoundTripStartsWhenThePacketInIsWrittenNotBuilt) {
  handshake();
  auto pins = sendLoad(1, 1000);
  auto f = packet::parseFrame(pins[0].data);
  ASSERT_TRUE(f);
  sw_->markSent(1600);
  sw_->markSent(9000);  // nothing new since: changes nothing
  feed(flowFor(f->src_port, f->dst_port), 2000);
  ASSERT_EQ(rtts_.size(), 1u);
  EXPECT_EQ(rtts_[0], 400);
}

TEST_F(SimSwitchTest, UnansweredPacketInsExpire) {
  handshake();
  sendLoad(2, 100);
  sendLoad(3, 500);
  EXPECT_EQ(sw_->expire(200), 2u);
  EXPECT_EQ(sw_->outstanding(), 1u);
  EXPECT_EQ(sw_->counters().timeouts, 2u);
}

TEST_F(SimSwitchTest, ConsumesWholeMessagesOnlyAndRejectsGarbage) {
  makeSwitch();
  Buffer in, out;
  ofp::encode(ofp::Version::kOf13, 1, ofp::Echo{false, {}}, in);
  ofp::encode(ofp::Version::kOf13, 2, ofp::FeaturesRequest{}, in);
  auto used = sw_->consume(Bytes(in.data(), in.size() - 3), 0, out, rtts_);
  ASSERT_TRUE(used);
  EXPECT_EQ(*used, 8u);
  EXPECT_EQ(decodeAll(out).size(), 1u);

  Buffer garbage = {0x04, 0xee, 0x00, 0x08, 0, 0, 0, 0};
  EXPECT_FALSE(sw_->consume(Bytes(garbage), 0, out, rtts_));
}

TEST(OfloadReport, NearestRankPercentilesAndJson) {
  std::vector<std::int64_t> rtts;
  for (int i = 1000; i >= 1; --i) rtts.push_back(i * 1000);  // 1..1000 us
  LatencySummary s = summarize(rtts);
  EXPECT_EQ(s.count, 1000u);
  EXPECT_DOUBLE_EQ(s.p50_us, 500);
  EXPECT_DOUBLE_EQ(s.p90_us, 900);
  EXPECT_DOUBLE_EQ(s.p99_us, 990);
  EXPECT_DOUBLE_EQ(s.p999_us, 999);
  EXPECT_DOUBLE_EQ(s.max_us, 1000);
  EXPECT_DOUBLE_EQ(s.mean_us, 500.5);

  Options o;
  RunResult r;
  r.seconds = 2;
  r.measured.setups = 10;
  r.latency = s;
  r.first_error = "ERROR \"x\"";
  std::string json = formatJson(o, r);
  EXPECT_NE(json.find("\"setups_per_sec\":5.0"), std::string::npos);
  EXPECT_NE(json.find("\"p99_us\":990.0"), std::string::npos);
  EXPECT_NE(json.find("\"first_error\":\"ERROR \\\"x\\\"\""), std::string::npos);
  EXPECT_EQ(json.find('\n'), std::string::npos);
  EXPECT_NE(json.find("\"wait\":\"epoll\""), std::string::npos);
  EXPECT_NE(formatHuman(o, r).find("5 setups/s"), std::string::npos);
}

}  // namespace
}  // namespace cw::ofload
