// A small network for packet-path tests: one switch (datapath 1), the gateway on port 1 and
// three cells, each showing one side of the packet path:
//   web   (port 2): default deny, rules that allow, deny and reject; resolves any name
//   ask   (port 3): default "prompt": what no rule covers is held for an answer
//   watch (port 4): inspect mode, every packet reaches the controller
// A FakeSwitch records what the path writes; a Recorder what it reports. PathNet is the
// network alone (for table-driven tests, one per case); PathTest the gtest fixture.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "decide/net_view.h"
#include "packet/builder.h"
#include "path/packet_path.h"
#include "policy/policy.h"
#include "switch/fake_switch.h"

namespace cw::path::testing {

inline std::shared_ptr<const decide::CompiledPolicy> compile(const std::string& toml) {
  auto p = policy::parsePolicy(toml, "test.toml");
  if (!p) throw std::runtime_error(p.error().str());
  return decide::CompiledPolicy::of(std::make_shared<const policy::Matcher>(std::move(p.value())));
}

inline Ip4 ip(const char* s) { return *Ip4::parse(s); }

// What the packet path reported, copied (the frames it hands out live only during the call).
struct Recorder final : PacketObserver {
  struct Decided {
    std::string app;  // "" when no cell
    decide::Decision d;
    std::vector<std::uint8_t> frame;
  };
  struct Held {
    std::string app;
    decide::Reason reason;
    std::uint64_t dpid;
    std::uint32_t in_port;
    std::vector<std::uint8_t> frame;
  };
  std::vector<Decided> decided;
  std::vector<Held> held;
  std::vector<std::string> answers;  // the app of each resolver answer handed on

  void onResolverAnswer(const decide::CellPort& cell, const packet::Frame&, std::vector<dns::Mapping>*) override {
    answers.push_back(cell.app);
  }
  void onDecision(const decide::CellPort* cell, const decide::Decision& d, const packet::Frame& f,
                  decide::Now) override {
    decided.push_back({cell != nullptr ? cell->app : "", d, {f.raw.begin(), f.raw.end()}});
  }
  void onHeld(const decide::CellPort& cell, const decide::Decision& d, const packet::Frame& f,
              std::uint64_t dpid, std::uint32_t in_port, decide::Now) override {
    held.push_back({cell.app, d.reason, dpid, in_port, {f.raw.begin(), f.raw.end()}});
  }
};

// Every view a test publishes has a generation no earlier test used: the packet path's
// per-thread caches (replays, inspect mode's connections) belong to one generation, so tests
// in one process never see each other's connections.
inline std::uint64_t freshGeneration() {
  static std::uint64_t g = 1000;
  return ++g;
}

struct PathNet {
  decide::GatewayPort gw{"default", 1, *MacAddr::parse("02:d1:00:00:00:01"), ip("10.200.0.1")};
  decide::CellPort web{2, "web", "default", 2, *MacAddr::parse("02:c3:0a:c8:00:02"), ip("10.200.0.2"),
                       compile("default = \"deny\"\nresolve = \"any\"\n"
                               "[[allow]]\nproto = \"tcp\"\nto = \"192.0.2.10\"\nports = [80, 443]\n"
                               "[[rule]]\naction = \"reject\"\nto = \"192.0.2.66\"\n"),
                       std::make_shared<decide::CellRuntime>()};
  decide::CellPort ask{3, "ask", "default", 3, *MacAddr::parse("02:c3:0a:c8:00:03"), ip("10.200.0.3"),
                       compile("default = \"prompt\"\n[[allow]]\nproto = \"tcp\"\nto = \"192.0.2.10\"\n"),
                       nullptr};
  decide::CellPort watch{4, "watch", "default", 4, *MacAddr::parse("02:c3:0a:c8:00:04"), ip("10.200.0.4"),
                         compile("default = \"deny\"\nresolve = \"any\"\n"
                                 "[[allow]]\nproto = \"tcp\"\nto = \"192.0.2.10\"\nports = 443\n"),
                         nullptr, /*inspect=*/true};

  decide::ViewHolder views;
  Recorder seen;
  PacketPath path{views, {}, &seen};
  sw::FakeSwitch sw{1};

  PathNet() { publish(); }
  ~PathNet() { EXPECT_EQ(sw.unencodable(), 0u) << "the path wrote what OpenFlow 1.3 cannot say"; }

  // The cells as they are now, in a view of a new generation.
  void publish() {
    auto v = std::make_shared<decide::NetView>();
    v->generation = freshGeneration();
    auto& s = v->switches[1];
    s.dpid = 1;
    s.gateways_by_port[gw.ofport] = gw;
    s.gateway_port_by_env[gw.env] = gw.ofport;
    for (const decide::CellPort* c : {&web, &ask, &watch}) {
      s.cells_by_port[c->ofport] = *c;
      s.cell_port_by_ip[c->ip.v] = c->ofport;
      s.any_inspect = s.any_inspect || c->inspect;
    }
    views.publish(std::move(v));
  }

  packet::EthSpec fromCell(const decide::CellPort& c) const { return {c.mac, gw.mac, 0}; }
  packet::EthSpec toCell(const decide::CellPort& c) const { return {gw.mac, c.mac, 0}; }
  std::vector<std::uint8_t> tcpFrom(const decide::CellPort& c, const char* to, std::uint16_t dport,
                                    std::uint8_t flags = packet::kTcpSyn, std::uint16_t sport = 40000) const {
    return packet::buildTcp4(fromCell(c), c.ip, ip(to), sport, dport, flags);
  }
  std::vector<std::uint8_t> tcpTo(const decide::CellPort& c, const char* from, std::uint16_t sport,
                                  std::uint8_t flags = packet::kTcpAck, std::uint16_t dport = 40000) const {
    return packet::buildTcp4(toCell(c), ip(from), c.ip, sport, dport, flags);
  }

  // Hands `frame` to the path as a Packet-In on `port` (the frame must outlive the call only).
  void packetIn(std::uint32_t port, const std::vector<std::uint8_t>& frame,
                ofp::PacketInReason reason = ofp::PacketInReason::kNoMatch, std::uint64_t cookie = 0) {
    ofp::PacketIn pi;
    pi.match.inPort(port);
    pi.reason = reason;
    pi.cookie = cookie;
    pi.table_id = 0;
    pi.data = Bytes(frame);
    pi.total_len = static_cast<std::uint16_t>(frame.size());
    path.handle(sw, pi);
  }
};

// The output ports of an action list, in order.
inline std::vector<std::uint32_t> outputs(const ofp::ActionList& actions) {
  std::vector<std::uint32_t> out;
  for (const auto& a : actions)
    if (const auto* o = std::get_if<ofp::ActionOutput>(&a)) out.push_back(o->port);
  return out;
}

class PathTest : public ::testing::Test, public PathNet {};

}  // namespace cw::path::testing
