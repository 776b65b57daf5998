#include "daemon/packet_path.h"

namespace cw::daemon {

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
    snoop(decide::cookieCell(pi.cookie), *frame);
    return;
  }
  decide::Decision d = decider_.decide(*sv, pi.inPort(), *frame);
  if (d.dns_answer && d.action == policy::Action::kAllow) snoop(d.cell_id, *frame);
  reasons_[static_cast<std::size_t>(d.reason)].fetch_add(1, std::memory_order_relaxed);
  (d.action == policy::Action::kAllow ? allowed_ : denied_).fetch_add(1, std::memory_order_relaxed);
  for (const auto& fm : d.flows) s.sendFlowMod(fm);
  for (const auto& po : d.packet_outs) s.sendPacketOut(po);
}

void PacketPath::snoop(std::uint32_t cell_id, const packet::Frame& frame) {
  answers_seen_.fetch_add(1, std::memory_order_relaxed);
  if (answers_ != nullptr) answers_->onResolverAnswer(cell_id, frame);
}

}  // namespace cw::daemon
