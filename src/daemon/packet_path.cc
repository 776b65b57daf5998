#include "daemon/packet_path.h"

#include <chrono>

namespace cw::daemon {

decide::Now clockNow() {
  using namespace std::chrono;
  return {duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count(),
          duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count()};
}

void PacketPath::handle(sw::Switch& s, const ofp::PacketIn& pi) {
  // One reader per thread: refreshing it is a single atomic load unless the view changed.
  thread_local decide::ViewHolder::Reader reader(views_);
  const decide::NetView& view = reader.refresh();
  const decide::SwitchView* sv = view.find(s.datapathId());
  if (sv == nullptr) return;
  auto frame = packet::parseFrame(pi.data);
  if (!frame) {
    weirds_[static_cast<std::size_t>(frame.error())].fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (pi.reason == ofp::PacketInReason::kAction &&
      decide::cookieKind(pi.cookie) == decide::CookieKind::kDnsAnswer) {
    // A copy of an answer the switch has already delivered: learn from it, decide nothing.
    // Only the resolver-answer flow carries this cookie, and only the controller installs it.
    snoop(*sv, decide::cookieCell(pi.cookie), *frame);
    return;
  }
  decide::Now now = clockNow();
  decide::Decision d = decider_.decide(*sv, pi.inPort(), *frame, now);
  if (d.dns_answer && d.action == policy::Action::kAllow) snoop(*sv, d.cell_id, *frame);
  reasons_[static_cast<std::size_t>(d.reason)].fetch_add(1, std::memory_order_relaxed);
  (d.action == policy::Action::kAllow ? allowed_ : denied_).fetch_add(1, std::memory_order_relaxed);
  for (const auto& fm : d.flows) s.sendFlowMod(fm);
  for (const auto& po : d.packet_outs) s.sendPacketOut(po);
  if (observer_ != nullptr && d.reason != decide::Reason::kUnknownPort && d.reason != decide::Reason::kNotIpv4)
    observer_->onDecision(sv->cellOnPort(pi.inPort()), d, *frame, now);
}

void PacketPath::snoop(const decide::SwitchView& sv, std::uint32_t cell_id, const packet::Frame& frame) {
  answers_seen_.fetch_add(1, std::memory_order_relaxed);
  if (observer_ == nullptr || !frame.isIpv4()) return;
  const decide::CellPort* cell = sv.cellWithIp(frame.ip_dst.v4());
  if (cell == nullptr || cell->cell_id != cell_id) return;  // the cell went away meanwhile
  observer_->onResolverAnswer(*cell, frame);
}

}  // namespace cw::daemon
