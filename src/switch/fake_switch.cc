#include "switch/fake_switch.h"

#include <utility>

#include "ofp/codec.h"

namespace cw::sw {

std::uint32_t FakeSwitch::send(const ofp::Message& msg) {
  const std::uint32_t xid = next_xid_++;
  if (!ofp::canEncode(version_, msg)) {
    ++unencodable_;
    return xid;
  }
  ++counters_.tx_messages;
  if (std::holds_alternative<ofp::FlowMod>(msg)) ++counters_.flow_mods;
  if (std::holds_alternative<ofp::PacketOut>(msg)) ++counters_.packet_outs;
  log_.push_back(
      ofp::format(ofp::Decoded{ofp::Header{static_cast<std::uint8_t>(version_), 0, 0, xid}, msg}));
  sent_.push_back(msg);
  return xid;
}

void FakeSwitch::barrier(std::function<void(bool ok)> done) {
  if (!connected_) return done(false);
  send(ofp::BarrierRequest{});
  done(true);
}

void FakeSwitch::dumpFlows(const ofp::FlowStatsRequest& req,
                           std::function<void(bool ok, std::vector<ofp::FlowStats>)> done) {
  if (!connected_) return done(false, {});
  send(ofp::MultipartRequest{0, req});
  done(true, dump_reply_);
}

void FakeSwitch::close(const std::string& why) {
  if (!connected_) return;
  connected_ = false;
  closed_why_ = why;
}

std::vector<std::string> FakeSwitch::matching(const std::string& text) const {
  std::vector<std::string> out;
  for (const auto& l : log_)
    if (l.find(text) != std::string::npos) out.push_back(l);
  return out;
}

std::vector<ofp::FlowMod> FakeSwitch::flowMods() const {
  std::vector<ofp::FlowMod> out;
  for (const auto& m : sent_)
    if (const auto* fm = std::get_if<ofp::FlowMod>(&m)) out.push_back(*fm);
  return out;
}

std::vector<ofp::PacketOut> FakeSwitch::packetOuts() const {
  std::vector<ofp::PacketOut> out;
  for (const auto& m : sent_)
    if (const auto* po = std::get_if<ofp::PacketOut>(&m)) out.push_back(*po);
  return out;
}

std::vector<ofp::CtFlush> FakeSwitch::ctFlushes() const {
  std::vector<ofp::CtFlush> out;
  for (const auto& m : sent_)
    if (const auto* f = std::get_if<ofp::CtFlush>(&m)) out.push_back(*f);
  return out;
}

std::vector<ofp::CtFlushZone> FakeSwitch::ctFlushZones() const {
  std::vector<ofp::CtFlushZone> out;
  for (const auto& m : sent_)
    if (const auto* f = std::get_if<ofp::CtFlushZone>(&m)) out.push_back(*f);
  return out;
}

std::size_t FakeSwitch::runPosted() {
  std::size_t n = 0;
  while (!posted_.empty()) {
    auto batch = std::exchange(posted_, {});
    for (auto& fn : batch) fn();
    n += batch.size();
  }
  return n;
}

}  // namespace cw::sw
