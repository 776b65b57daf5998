#include "path/packet_path.h"

#include <array>
#include <chrono>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "decide/rule_flows.h"

namespace cw::path {

decide::Now clockNow() {
  using namespace std::chrono;
  return {duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count(),
          duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count()};
}

decide::ViewHolder::Reader& PacketPath::reader() const {
  // One reader per thread: refreshing it is a single atomic load unless the view changed.
  // cellwalld has one ViewHolder; a thread that meets another one (unit tests make one per
  // test) takes a reader of it instead of keeping a reference to a holder that may be gone.
  struct Bound {
    const decide::ViewHolder* holder = nullptr;
    std::optional<decide::ViewHolder::Reader> reader;
  };
  thread_local Bound b;
  if (b.holder != &views_) {
    b.reader.emplace(views_);
    b.holder = &views_;
  }
  return *b.reader;
}

std::shared_ptr<const decide::NetView> PacketPath::renewView() const { return reader().renew(); }

void PacketPath::handle(sw::Switch& s, const ofp::PacketIn& pi) {
  const decide::NetView& view = reader().refresh();
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
    snoop(*sv, decide::cookieCell(pi.cookie), *frame, nullptr);
    return;
  }
  if (pi.reason == ofp::PacketInReason::kAction &&
      decide::cookieKind(pi.cookie) == decide::CookieKind::kDnsHeld) {
    return releaseAnswer(s, *sv, pi, *frame);
  }
  decide::Now now = clockNow();
  if (pi.reason == ofp::PacketInReason::kAction && decide::cookieKind(pi.cookie) == decide::CookieKind::kRules) {
    // A copy of the first packet of a connection the switch decided by its rules' flows: the
    // packet went on (or was dropped) already; the controller logs it as it would decide it.
    return noteSwitchDecided(s, *sv, pi, *frame, now);
  }
  if (sv->any_inspect && frame->isIpv4()) {
    // Inspect mode: a packet from an inspected cell, or towards one.
    const decide::CellPort* from = sv->cellOnPort(pi.inPort());
    const decide::CellPort* to = from == nullptr || !from->inspect ? sv->cellWithIp(frame->ip_dst.v4()) : nullptr;
    if (from != nullptr && from->inspect)
      return inspectPacket(s, *sv, *from, pi.inPort(), *frame, false, view.generation, now);
    if (to != nullptr && to->inspect)
      return inspectPacket(s, *sv, *to, pi.inPort(), *frame, true, view.generation, now);
  }
  // What conntrack said, when the packet came through it (docs/pipeline.md).
  decide::CtSeen ct;
  const bool tracked = pi.match.has(ofp::Field::kCtState) && (pi.match.ct_state & ofp::kCtTrk) != 0;
  if (tracked) {
    ct.state = pi.match.ct_state;
    ct.zone = pi.match.has(ofp::Field::kCtZone) ? pi.match.ct_zone : 0;
    ct.mark = pi.match.has(ofp::Field::kCtMark) ? pi.match.ct_mark : 0;
    ct.label = pi.match.has(ofp::Field::kCtLabel) ? pi.match.ct_label_lo : 0;
    ct.table = pi.table_id;
  }
  // Invalid to conntrack: never replayed as the connection it names was decided.
  const bool invalid = tracked && (ct.state & ofp::kCtInv) != 0;
  if (!invalid && replayRecent(s, pi.inPort(), *frame, view.generation, now.mono_ms)) return;
  decide::Decision d = decider_.decide(*sv, pi.inPort(), *frame, now, nullptr, tracked ? &ct : nullptr);
  rememberDecision(pi.inPort(), *frame, d, view.generation, now.mono_ms);
  apply(s, *sv, pi.inPort(), *frame, d, now);
}

void PacketPath::release(sw::Switch& s, std::uint32_t in_port, const std::vector<std::uint8_t>& bytes,
                         const decide::HeldVerdict* held) {
  const decide::NetView& view = reader().refresh();
  const decide::SwitchView* sv = view.find(s.datapathId());
  if (sv == nullptr) return;
  auto frame = packet::parseFrame(bytes);
  if (!frame) return;  // it parsed when it was held
  decide::Now now = clockNow();
  // A question holds the connection's retransmissions too: the first released copy decides
  // (and is logged, once); the others follow it.
  if (replayRecent(s, in_port, *frame, view.generation, now.mono_ms)) return;
  decide::Decision d = decider_.decide(*sv, in_port, *frame, now, held);
  // Remembered as handle() does: the connection's next packets may still reach the controller
  // for a moment, and must follow this decision, not be decided as strays.
  rememberDecision(in_port, *frame, d, view.generation, now.mono_ms);
  apply(s, *sv, in_port, *frame, d, now);
}

void PacketPath::countAndSendScriptRequests(sw::Switch& s, const decide::Decision& d) {
  reasons_[static_cast<std::size_t>(d.reason)].fetch_add(1, std::memory_order_relaxed);
  if (d.query_error)
    query_weirds_[static_cast<std::size_t>(*d.query_error)].fetch_add(1, std::memory_order_relaxed);
  for (const auto& mm : d.scripts.meters) s.send(mm);
  for (const auto& fm : d.scripts.flows) s.sendFlowMod(fm);
}

void PacketPath::apply(sw::Switch& s, const decide::SwitchView& sv, std::uint32_t in_port,
                       const packet::Frame& frame, const decide::Decision& d, decide::Now now) {
  countAndSendScriptRequests(s, d);
  if (d.held) {
    const decide::CellPort* cell = sv.cellOnPort(in_port);
    if (observer_ != nullptr && cell != nullptr)
      observer_->onHeld(*cell, d, frame, s.datapathId(), in_port, now);
    return;
  }
  if (d.dns_answer && d.action == policy::Action::kAllow) snoop(sv, d.cell_id, frame, nullptr);
  // An open connection decided again the same way is nothing new: counted by its reason only.
  const bool unchanged = (d.again && d.action == policy::Action::kAllow) ||
                         (d.reason == decide::Reason::kCtInvalid && d.script.empty());
  if (!unchanged) (d.action == policy::Action::kAllow ? allowed_ : denied_).fetch_add(1, std::memory_order_relaxed);
  for (const auto& c : d.counts) installCounts(s, sv, c.ofport, c.cell_id, c.label);
  for (const auto& po : d.packet_outs) s.sendPacketOut(po);
  // A checked query that went on to the resolver is counted, not logged: the connection it
  // leads to is (a refused one is logged like any refused connection). An open connection the
  // new rules cut is logged as such.
  const bool allowed_query = d.dns_query && d.action == policy::Action::kAllow;
  if (observer_ != nullptr && d.reason != decide::Reason::kUnknownPort &&
      d.reason != decide::Reason::kNotIpv4 && !allowed_query && !unchanged) {
    const decide::CellPort* cell = sv.cellOnPort(in_port);
    if (cell == nullptr && (d.reason == decide::Reason::kInboundRule || d.inbound) && frame.isIpv4())
      cell = sv.cellWithIp(frame.ip_dst.v4());
    observer_->onDecision(cell, d, frame, now);
  }
}

namespace {

// The last decisions of this switch thread, by connection. A connection's next packets can
// reach the controller before the switch has committed it (a retransmitted SYN, packets sent
// back to back): those repeats are forwarded as decided, not decided again: a connection is
// decided (counted, logged) once.
struct Recent {
  std::uint64_t generation = 0;  // the view it was decided in: any policy change invalidates
  std::int64_t at_ms = -1;
  std::uint32_t in_port = 0, src = 0, dst = 0;
  std::uint16_t sport = 0, dport = 0;
  std::uint8_t proto = 0;
  bool allow = false;
  ofp::ActionList actions;  // how the tables forward it (the decision's first leg)
};
constexpr std::size_t kRecentSlots = 1024;
constexpr std::int64_t kRecentMs = 1000;

Recent& slotFor(std::uint32_t in_port, const packet::Frame& f) {
  thread_local std::array<Recent, kRecentSlots> recent;
  std::uint64_t h = (std::uint64_t{f.ip_src.v4().v} << 32 | f.ip_dst.v4().v) * 0x9e3779b97f4a7c15ULL;
  h ^= (std::uint64_t{f.src_port} << 16 | f.dst_port | std::uint64_t{in_port} << 40 |
        std::uint64_t{f.ip_proto} << 32) * 0xc2b2ae3d27d4eb4fULL;
  return recent[(h >> 32) % kRecentSlots];
}

bool sameConnection(const Recent& r, std::uint32_t in_port, const packet::Frame& f) {
  return r.in_port == in_port && r.proto == f.ip_proto && r.src == f.ip_src.v4().v &&
         r.dst == f.ip_dst.v4().v && r.sport == f.src_port && r.dport == f.dst_port;
}

}  // namespace

bool PacketPath::replayRecent(sw::Switch& s, std::uint32_t in_port, const packet::Frame& f,
                              std::uint64_t generation, std::int64_t now_ms) {
  if (!f.isIpv4()) return false;
  const Recent& r = slotFor(in_port, f);
  if (r.at_ms < 0 || now_ms - r.at_ms > kRecentMs || r.generation != generation ||
      !sameConnection(r, in_port, f))
    return false;
  repeats_.fetch_add(1, std::memory_order_relaxed);
  if (r.allow) {
    ofp::PacketOut po;
    po.in_port = in_port;
    po.actions = r.actions;
    po.data.assign(f.raw.begin(), f.raw.end());
    s.sendPacketOut(po);
  }
  return true;
}

void PacketPath::rememberDecision(std::uint32_t in_port, const packet::Frame& f, const decide::Decision& d,
                                  std::uint64_t generation, std::int64_t now_ms) {
  if (!f.isIpv4() || d.legs.empty()) return;  // rejects answer every packet: nothing to remember
  Recent& r = slotFor(in_port, f);
  r.generation = generation;
  r.at_ms = now_ms;
  r.in_port = in_port;
  r.src = f.ip_src.v4().v;
  r.dst = f.ip_dst.v4().v;
  r.sport = f.src_port;
  r.dport = f.dst_port;
  r.proto = f.ip_proto;
  r.allow = d.action == policy::Action::kAllow;
  r.actions = d.legs.front().actions;
  if (r.allow && r.actions.empty()) r.at_ms = -1;  // nothing to replay with: decide again
}

namespace {

// Inspect mode's connection table: how the tables would forward each direction of a decided
// connection (the decision's legs), kept by the controller, which now forwards each packet
// itself. Per switch thread, bounded.
struct InspectKey {
  std::uint32_t in_port, src, dst;
  std::uint16_t sport, dport;
  std::uint8_t proto;
  bool operator==(const InspectKey&) const = default;
};
struct InspectKeyHash {
  std::size_t operator()(const InspectKey& k) const {
    std::uint64_t h = (std::uint64_t{k.src} << 32 | k.dst) * 0x9e3779b97f4a7c15ULL;
    h ^= (std::uint64_t{k.sport} << 16 | k.dport | std::uint64_t{k.in_port} << 40 |
          std::uint64_t{k.proto} << 32) * 0xc2b2ae3d27d4eb4fULL;
    return static_cast<std::size_t>(h ^ (h >> 29));
  }
};
struct InspectConn {
  std::uint64_t generation = 0;  // any policy change: decided again
  std::int64_t last_ms = 0, idle_ms = 0;
  bool allow = false;
  bool snoop = false;  // the environment resolver's answers: learned from, as the flow would copy them
  std::uint32_t cell_id = 0;
  ofp::ActionList actions;
};
constexpr std::size_t kInspectConns = 65536;

InspectKey keyOf(std::uint32_t in_port, const packet::Frame& f, bool reverse) {
  InspectKey k{in_port, f.ip_src.v4().v, f.ip_dst.v4().v, f.src_port, f.dst_port, f.ip_proto};
  if (reverse) {
    std::swap(k.src, k.dst);
    std::swap(k.sport, k.dport);
  }
  return k;
}

}  // namespace

void PacketPath::inspectPacket(sw::Switch& s, const decide::SwitchView& sv, const decide::CellPort& cell,
                               std::uint32_t in_port, const packet::Frame& f, bool inbound,
                               std::uint64_t generation, decide::Now now) {
  inspected_.fetch_add(1, std::memory_order_relaxed);
  if (judge_ != nullptr) {
    decide::Decision::ScriptRequests req;
    auto v = judge_->inspect(sv, cell, in_port, f, inbound, now, req);
    for (const auto& mm : req.meters) s.send(mm);
    for (const auto& fm : req.flows) s.sendFlowMod(fm);
    if (v && v->action != policy::Action::kAllow) {
      // This packet only: the connection goes on, and its next packet is asked again.
      inspect_refused_.fetch_add(1, std::memory_order_relaxed);
      if (v->action == policy::Action::kReject)
        for (const auto& po : decider_.rejectOf(f, in_port).packet_outs) s.sendPacketOut(po);
      return;
    }
  }
  struct Table {
    const PacketPath* owner = nullptr;
    std::unordered_map<InspectKey, InspectConn, InspectKeyHash> conns;
  };
  thread_local Table table;
  if (table.owner != this) {
    table.owner = this;
    table.conns.clear();
  }
  auto send = [&](const InspectConn& c) {
    if (c.snoop) snoop(sv, c.cell_id, f, nullptr);
    if (!c.allow) return;
    ofp::PacketOut po;
    po.in_port = in_port;
    po.actions = c.actions;
    po.data.assign(f.raw.begin(), f.raw.end());
    s.sendPacketOut(po);
  };
  const InspectKey key = keyOf(in_port, f, false);
  if (auto it = table.conns.find(key); it != table.conns.end()) {
    InspectConn& c = it->second;
    if (c.generation == generation && now.mono_ms - c.last_ms <= c.idle_ms) {
      c.last_ms = now.mono_ms;
      send(c);
      return;
    }
    table.conns.erase(it);
  }
  decide::Decision d = decider_.decide(sv, in_port, f, now);
  countAndSendScriptRequests(s, d);
  if (d.held) {
    if (observer_ != nullptr && !inbound) observer_->onHeld(cell, d, f, s.datapathId(), in_port, now);
    return;
  }
  if (d.reason == decide::Reason::kUnknownPort || d.reason == decide::Reason::kNotIpv4) return;
  (d.action == policy::Action::kAllow ? allowed_ : denied_).fetch_add(1, std::memory_order_relaxed);
  if (observer_ != nullptr && !(d.dns_query && d.action == policy::Action::kAllow))
    observer_->onDecision(&cell, d, f, now);
  if (d.dns_query) {  // forwarded or answered by the controller, nothing to remember
    for (const auto& po : d.packet_outs) s.sendPacketOut(po);
    return;
  }
  if (table.conns.size() >= kInspectConns) {
    std::erase_if(table.conns, [&](const auto& kv) {
      return kv.second.generation != generation || now.mono_ms - kv.second.last_ms > kv.second.idle_ms;
    });
    if (table.conns.size() >= kInspectConns) table.conns.clear();
  }
  if (d.action == policy::Action::kReject) {  // answered each time, as without inspect mode
    for (const auto& po : d.packet_outs) s.sendPacketOut(po);
    return;
  }
  // The decision's legs say what to do with each direction, and for how long. Nothing is
  // committed to conntrack: inspected packets never pass it.
  for (const decide::Leg& leg : d.legs) {
    InspectConn c;
    c.generation = generation;
    c.last_ms = now.mono_ms;
    c.idle_ms = std::int64_t{leg.idle_s} * 1000;
    c.allow = d.action == policy::Action::kAllow;
    c.cell_id = cell.cell_id;
    c.actions = leg.actions;
    c.snoop = leg.snoop;
    table.conns[keyOf(leg.in_port, f, leg.reverse)] = std::move(c);
  }
  if (d.dns_answer && d.action == policy::Action::kAllow) snoop(sv, d.cell_id, f, nullptr);
  auto it = table.conns.find(key);
  if (it != table.conns.end()) {
    InspectConn first = it->second;
    first.snoop = false;  // learned from above already
    send(first);
  }
}

void PacketPath::noteSwitchDecided(sw::Switch& s, const decide::SwitchView& sv, const ofp::PacketIn& pi,
                                   const packet::Frame& f, decide::Now now) {
  switch_decided_.fetch_add(1, std::memory_order_relaxed);
  decide::Decision d = decider_.asTheSwitchDecided(sv, pi.inPort(), f, now);
  if (d.reason == decide::Reason::kUnknownPort) return;
  // The flow that decided names its rule (0: the app's default); the switch ranks rules as the
  // Matcher does (rule_flows.h), so it is the controller's rule, or the flows are wrong.
  if (d.rule_id != (pi.cookie & decide::kCookieRuleMask)) switch_disagreed_.fetch_add(1, std::memory_order_relaxed);
  reasons_[static_cast<std::size_t>(d.reason)].fetch_add(1, std::memory_order_relaxed);
  (d.action == policy::Action::kAllow ? allowed_ : denied_).fetch_add(1, std::memory_order_relaxed);
  const decide::CellPort* cell = d.inbound ? sv.cellWithIp(f.ip_dst.v4()) : sv.cellOnPort(pi.inPort());
  // The flow committed the connection with its own rule in the label (rule_flows.cc): its count
  // flows from now on. Packets the connection sent before they are in count as "other".
  const auto flow_rule = static_cast<std::uint32_t>(pi.cookie & decide::kCookieRuleMask);
  if (cell != nullptr && d.action == policy::Action::kAllow)
    installCounts(s, sv, cell->ofport, cell->cell_id, decide::labelOf(decide::LabelSource::kRule, flow_rule));
  if (observer_ == nullptr) return;
  observer_->onDecision(cell, d, f, now);
}

void PacketPath::installCounts(sw::Switch& s, const decide::SwitchView& sv, std::uint32_t ofport,
                               std::uint32_t cell_id, std::uint64_t label) {
  const decide::CellPort* cell = sv.cellOnPort(ofport);
  if (cell == nullptr || cell->cell_id != cell_id) return;
  ensureCountFlows(s, *cell, label);
}

void PacketPath::ensureCountFlows(sw::Switch& s, const decide::CellPort& cell, std::uint64_t label) {
  if (!cell.count || !cell.runtime) return;
  {
    std::lock_guard lock(cell.runtime->mu);
    if (!cell.runtime->counted.insert(label).second) return;
  }
  for (const auto& fm : decide::cellCountFlows(cell, label)) s.sendFlowMod(fm);
}

const decide::CellPort* PacketPath::snoop(const decide::SwitchView& sv, std::uint32_t cell_id,
                                          const packet::Frame& frame, std::vector<dns::Mapping>* learned) {
  answers_seen_.fetch_add(1, std::memory_order_relaxed);
  if (!frame.isIpv4()) return nullptr;
  const decide::CellPort* cell = sv.cellWithIp(frame.ip_dst.v4());
  if (cell == nullptr || cell->cell_id != cell_id) return nullptr;  // the cell went away meanwhile
  if (observer_ != nullptr) observer_->onResolverAnswer(*cell, frame, learned);
  return cell;
}

void PacketPath::releaseAnswer(sw::Switch& s, const decide::SwitchView& sv, const ofp::PacketIn& pi,
                               const packet::Frame& frame) {
  // An answer of the resolver to a cell whose connections the switch decides: held by the
  // switch until the names in it are flows of the cell's host rules (table 6), so that the
  // cell's first connection to one of them meets them. Learned, the flows written, then the
  // answer sent on: the switch handles one channel's messages in order.
  std::vector<dns::Mapping> learned;
  const decide::CellPort* cell = snoop(sv, decide::cookieCell(pi.cookie), frame, &learned);
  if (cell == nullptr) return;
  const decide::GatewayPort* gw = sv.gatewayFor(cell->env);
  if (gw != nullptr && cell->policy && cell->switch_rules && cell->runtime) {
    // For each address in the answer, every name the cell now has for it, each for as long as
    // its name table keeps it (two names reaching one rule make the same flow: the longer lives).
    const decide::Now now = clockNow();
    std::vector<Ip4> done;
    for (const auto& m : learned) {
      if (!m.ip.is_v4() || std::find(done.begin(), done.end(), m.ip.v4()) != done.end()) continue;
      done.push_back(m.ip.v4());
      std::array<std::string_view, names::kMaxNamesPerIp> found;
      std::array<std::int64_t, names::kMaxNamesPerIp> until{};
      std::vector<decide::ResolvedName> named;
      std::vector<ofp::FlowMod> flows;
      {
        std::lock_guard lock(cell->runtime->mu);
        const std::size_t n = cell->runtime->names.names(m.ip, now.mono_ms, found, until);
        for (std::size_t i = 0; i < n; ++i) named.push_back(decide::ResolvedName{found[i], until[i] - now.mono_ms});
        flows = decide::nameFlows(*cell->policy, *cell, *gw, cell->meter_id, named, m.ip.v4(), now.unix_ms);
      }
      // Counted from their first packet when the controller will hear of none of them.
      if (!cell->log_copies)
        for (std::uint64_t label : decide::allowedLabels(flows)) ensureCountFlows(s, *cell, label);
      for (const auto& fm : flows) s.sendFlowMod(fm);
    }
  }
  ofp::PacketOut po;
  po.in_port = pi.inPort();
  po.actions.emplace_back(ofp::ActionOutput{cell->ofport, 0});
  po.data.assign(frame.raw.begin(), frame.raw.end());
  s.sendPacketOut(po);
}

}  // namespace cw::path
