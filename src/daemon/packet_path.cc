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
  decide::Decision d = decider_.decide(*sv, pi.inPort(), *frame);
  reasons_[static_cast<std::size_t>(d.reason)].fetch_add(1, std::memory_order_relaxed);
  (d.action == policy::Action::kAllow ? allowed_ : denied_).fetch_add(1, std::memory_order_relaxed);
  for (const auto& fm : d.flows) s.sendFlowMod(fm);
  for (const auto& po : d.packet_outs) s.sendPacketOut(po);
}

}  // namespace cw::daemon
