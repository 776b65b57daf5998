// FakeSwitch: a sw::Switch for hermetic unit tests (switch.h is the interface). Records every
// message it is asked to send, in order, so a test can assert what the code under test wrote
// (flow-mods, packet-outs, meter-mods, conntrack flushes, barriers, flow dumps); nothing goes anywhere.
//
// Like the real connection it checks that each message can be encoded in the switch's
// OpenFlow version (ofp::canEncode) and counts those that cannot instead of sending them
// (the real one would assert); tests assert unencodable() == 0.
//
// post() queues; runPosted() runs what was queued, as the switch's event loop would later.
// barrier() answers at once (true while connected); dumpFlows() answers with `dump_reply_`.
// close() marks it disconnected and records why.
// Not thread-safe; test use only (linked as cw_switch_fake, never into the daemon).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "switch/switch.h"

namespace cw::sw {

class FakeSwitch final : public Switch {
 public:
  explicit FakeSwitch(std::uint64_t dpid = 1, ofp::Version version = ofp::Version::kOf13)
      : dpid_(dpid), version_(version) {}

  std::uint64_t datapathId() const override { return dpid_; }
  ofp::Version version() const override { return version_; }
  bool isConnected() const override { return connected_; }
  std::string peer() const override { return "fake:" + std::to_string(dpid_); }
  Auth auth() const override { return Auth::kUnixPeerCred; }
  const std::vector<ofp::PortDesc>& ports() const override { return ports_; }

  std::uint32_t send(const ofp::Message& msg) override;
  void sendFlowMod(const ofp::FlowMod& fm) override { send(fm); }
  void sendPacketOut(const ofp::PacketOut& po) override { send(po); }
  void barrier(std::function<void(bool ok)> done) override;
  void dumpFlows(const ofp::FlowStatsRequest& req,
                 std::function<void(bool ok, std::vector<ofp::FlowStats>)> done) override;
  void post(std::function<void()> fn) override { posted_.push_back(std::move(fn)); }
  SwitchCounters counters() const override { return counters_; }
  void close(const std::string& why) override;

  // Everything sent, in order (flow-mods and packet-outs included, barriers as
  // BarrierRequest, dumps as MultipartRequest).
  const std::vector<ofp::Message>& sent() const { return sent_; }
  // The same, one line each as ofp::format writes it ("FLOW_MOD add table=1 ...").
  const std::vector<std::string>& log() const { return log_; }
  // Log lines containing text, in order.
  std::vector<std::string> matching(const std::string& text) const;
  // The flow-mods and packet-outs sent, in order (copies: keep them by value).
  std::vector<ofp::FlowMod> flowMods() const;
  std::vector<ofp::PacketOut> packetOuts() const;
  // The conntrack flushes sent, in order.
  std::vector<ofp::CtFlush> ctFlushes() const;
  std::vector<ofp::CtFlushZone> ctFlushZones() const;
  // Messages the switch's version cannot express (not recorded in sent()).
  std::size_t unencodable() const { return unencodable_; }
  // Forgets what was sent (not the counters).
  void clear() {
    sent_.clear();
    log_.clear();
  }
  // Runs what post() queued (and what those post in turn); returns how many ran.
  std::size_t runPosted();
  // Why close() was called, "" while it was not.
  const std::string& closedWhy() const { return closed_why_; }

  std::vector<ofp::PortDesc> ports_;
  std::vector<ofp::FlowStats> dump_reply_;

 private:
  std::uint64_t dpid_;
  ofp::Version version_;
  bool connected_ = true;
  std::uint32_t next_xid_ = 1;
  std::vector<ofp::Message> sent_;
  std::vector<std::string> log_;
  std::vector<std::function<void()>> posted_;
  SwitchCounters counters_;
  std::size_t unencodable_ = 0;
  std::string closed_why_;
};

}  // namespace cw::sw
