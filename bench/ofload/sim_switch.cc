#include "sim_switch.h"

#include <type_traits>
#include <utility>
#include <variant>

#include "packet/builder.h"
#include "packet/frame.h"

namespace cw::ofload {

namespace {

constexpr std::uint32_t kFirstSourcePort = 1024;
constexpr std::uint32_t kSourcePorts = 65536 - kFirstSourcePort;
constexpr std::uint8_t kTables = 254;
// OFPC_FLOW_STATS | OFPC_TABLE_STATS | OFPC_PORT_STATS: what the replies below pretend to offer.
constexpr std::uint32_t kCapabilities = 0x7;
constexpr std::uint32_t kPortFeatures = (1u << 6) | (1u << 11);  // 10GB_FD | COPPER
constexpr std::uint32_t kPortSpeedKbps = 10'000'000;

template <class... Fs>
struct Overloaded : Fs... {
  using Fs::operator()...;
};
template <class... Fs>
Overloaded(Fs...) -> Overloaded<Fs...>;

}  // namespace

SwitchCounters& SwitchCounters::operator+=(const SwitchCounters& o) {
  packet_ins += o.packet_ins;
  setups += o.setups;
  timeouts += o.timeouts;
  flow_mods += o.flow_mods;
  packet_outs += o.packet_outs;
  meter_mods += o.meter_mods;
  errors += o.errors;
  other += o.other;
  bytes_in += o.bytes_in;
  bytes_out += o.bytes_out;
  return *this;
}

SimSwitch::SimSwitch(const Options& opts, std::uint64_t datapath_id)
    : opts_(opts), datapath_id_(datapath_id) {
  pending_.reserve(static_cast<std::size_t>(opts.window) * 2);
}

void SimSwitch::start(std::vector<std::uint8_t>& out) {
  reply(xid_++, ofp::Hello{1u << static_cast<unsigned>(ofp::Version::kOf13)}, out);
}

void SimSwitch::reply(std::uint32_t xid, const ofp::Message& msg, std::vector<std::uint8_t>& out) {
  std::size_t before = out.size();
  ofp::encode(ofp::Version::kOf13, xid, msg, out);
  counters_.bytes_out += out.size() - before;
}

Result<std::size_t, std::string> SimSwitch::consume(Bytes stream, std::int64_t now_ns,
                                                    std::vector<std::uint8_t>& out,
                                                    std::vector<std::int64_t>& rtts) {
  std::size_t used = 0;
  while (true) {
    Bytes rest = stream.subspan(used);
    auto len = ofp::frameLength(rest);
    if (!len || *len > rest.size()) break;
    auto decoded = ofp::decode(rest.first(*len));
    if (!decoded) {
      return Unexpected(std::string("undecodable message from the controller (") +
                        ofp::decodeErrorName(decoded.error()) + ", " + std::to_string(*len) +
                        " bytes)");
    }
    counters_.bytes_in += *len;
    handle(*decoded, now_ns, out, rtts);
    used += *len;
  }
  return used;
}

void SimSwitch::handle(const ofp::Decoded& d, std::int64_t now_ns, std::vector<std::uint8_t>& out,
                       std::vector<std::int64_t>& rtts) {
  const std::uint32_t xid = d.header.xid;
  std::visit(
      Overloaded{
          [&](const ofp::Hello&) {},
          [&](const ofp::ErrorMsg&) {
            ++counters_.errors;
            if (first_error_.empty()) first_error_ = ofp::format(d);
          },
          [&](const ofp::Echo& e) {
            if (!e.reply) reply(xid, ofp::Echo{true, e.data}, out);
          },
          [&](const ofp::FeaturesRequest&) {
            ofp::FeaturesReply fr;
            fr.datapath_id = datapath_id_;
            fr.n_buffers = 0;
            fr.n_tables = kTables;
            fr.capabilities = kCapabilities;
            reply(xid, fr, out);
            if (features_at_ns_ < 0) features_at_ns_ = now_ns;
          },
          [&](const ofp::GetConfigRequest&) {
            reply(xid, ofp::SwitchConfig{false, 0, miss_send_len_}, out);
          },
          [&](const ofp::SwitchConfig& c) {
            if (c.set) miss_send_len_ = c.miss_send_len;
          },
          [&](const ofp::BarrierRequest&) {
            reply(xid, ofp::BarrierReply{}, out);
            if (features_at_ns_ >= 0) barrier_seen_ = true;
          },
          [&](const ofp::RoleMsg& r) {
            if (r.reply) return;
            ofp::RoleMsg answer = r;
            answer.reply = true;
            if (answer.role == ofp::ControllerRole::kNoChange) answer.role = ofp::ControllerRole::kEqual;
            reply(xid, answer, out);
          },
          [&](const ofp::MultipartRequest& m) {
            ofp::MultipartReply mr;
            if (std::holds_alternative<ofp::PortDescRequest>(m.body)) {
              mr.body = portList();
            } else if (std::holds_alternative<ofp::FlowStatsRequest>(m.body)) {
              mr.body = std::vector<ofp::FlowStats>{};
            } else {
              mr.body = std::vector<ofp::TableStats>{};
            }
            reply(xid, mr, out);
          },
          [&](const ofp::FlowMod& fm) { onFlowMod(fm, now_ns, rtts); },
          [&](const ofp::PacketOut& po) { onPacketOut(po, now_ns, rtts); },
          [&](const ofp::MeterMod&) { ++counters_.meter_mods; },
          [&](const auto&) { ++counters_.other; },
      },
      d.msg);
}

std::vector<ofp::PortDesc> SimSwitch::portList() const {
  std::vector<ofp::PortDesc> ports;
  ports.reserve(opts_.ports);
  for (std::uint32_t k = 1; k <= opts_.ports; ++k) {
    ofp::PortDesc p;
    p.port_no = k;
    // The switch side of the cell's veth: locally administered, unique per switch and port.
    p.hw_addr = MacAddr::from_u64(0x060000000000ULL | ((datapath_id_ & 0xffffff) << 16) | k);
    p.name = opts_.port_prefix + std::to_string(k);
    p.curr = p.advertised = p.supported = kPortFeatures;
    p.curr_speed = p.max_speed = kPortSpeedKbps;
    ports.push_back(std::move(p));
  }
  return ports;
}

bool SimSwitch::loadReady(std::int64_t now_ns) const {
  if (features_at_ns_ < 0) return false;
  return barrier_seen_ ||
         now_ns - features_at_ns_ >= static_cast<std::int64_t>(opts_.settle_ms) * 1'000'000;
}

std::size_t SimSwitch::fillWindow(std::size_t window, std::int64_t now_ns,
                                  std::vector<std::uint8_t>& out) {
  std::size_t sent = 0;
  while (pending_.size() < window) {
    sendPacketIn(now_ns, out);
    ++sent;
  }
  return sent;
}

void SimSwitch::sendPacketIn(std::int64_t now_ns, std::vector<std::uint8_t>& out) {
  const std::uint64_t n = next_conn_++;
  const auto k = static_cast<std::uint32_t>(n % opts_.ports);  // port k+1
  const auto sport = static_cast<std::uint16_t>(kFirstSourcePort + n % kSourcePorts);
  // The destination moves on each time the source ports wrap, so no 5-tuple repeats.
  const std::uint64_t epoch = n / kSourcePorts;
  const auto dport = static_cast<std::uint16_t>(opts_.dst_port + epoch % opts_.dst_port_count);
  const Ip4 dst{static_cast<std::uint32_t>(opts_.dst_ip.v + epoch / opts_.dst_port_count)};
  const Ip4 src{opts_.src_ip_base.v + k * opts_.src_ip_step};
  packet::EthSpec eth;
  eth.src = MacAddr::from_u64(opts_.src_mac_base.as_u64() + k);
  eth.dst = opts_.dst_mac;
  frame_ = packet::buildTcp4(eth, src, dst, sport, dport, packet::kTcpSyn,
                             static_cast<std::uint32_t>(n * 7919));

  ofp::PacketIn pi;
  pi.buffer_id = ofp::kNoBuffer;
  pi.total_len = static_cast<std::uint16_t>(frame_.size());
  pi.reason = ofp::PacketInReason::kNoMatch;
  pi.table_id = opts_.table_id;
  pi.match.inPort(k + 1);
  pi.data = Bytes(frame_);
  reply(xid_++, pi, out);
  ++counters_.packet_ins;

  auto [it, fresh] = pending_.try_emplace(sport);
  if (!fresh) ++counters_.timeouts;  // never answered within 64512 newer Packet-Ins
  it->second = Pending{now_ns, dport, 0};
  unsent_.push_back(sport);
}

void SimSwitch::markSent(std::int64_t now_ns) {
  for (std::uint16_t sport : unsent_) {
    // Gone already only if it expired before it was written.
    if (auto it = pending_.find(sport); it != pending_.end()) it->second.sent_ns = now_ns;
  }
  unsent_.clear();
}

void SimSwitch::onFlowMod(const ofp::FlowMod& fm, std::int64_t now_ns,
                          std::vector<std::int64_t>& rtts) {
  ++counters_.flow_mods;
  if (fm.command != ofp::FlowModCommand::kAdd) return;
  const ofp::Match& m = fm.match;
  const bool has_src = m.has(ofp::Field::kTcpSrc), has_dst = m.has(ofp::Field::kTcpDst);
  // Flows without TCP ports (table setup) name no connection.
  if ((!has_src && !has_dst) || opts_.complete_on != CompleteOn::kFlowMod) return;
  credit(m.tcp_src, m.tcp_dst, has_src, has_dst, opts_.flows_per_setup, now_ns, rtts);
}

void SimSwitch::onPacketOut(const ofp::PacketOut& po, std::int64_t now_ns,
                            std::vector<std::int64_t>& rtts) {
  ++counters_.packet_outs;
  if (opts_.complete_on != CompleteOn::kPacketOut || po.data.empty()) return;
  auto frame = packet::parseFrame(Bytes(po.data));
  if (!frame || frame->l4 != packet::L4::kTcp) return;
  credit(frame->src_port, frame->dst_port, true, true, 1, now_ns, rtts);
}

void SimSwitch::credit(std::uint16_t tcp_src, std::uint16_t tcp_dst, bool has_src, bool has_dst,
                       std::uint32_t needed, std::int64_t now_ns, std::vector<std::int64_t>& rtts) {
  // Our Packet-Ins are keyed by their source port: the forward flow names it as tcp_src, the
  // reverse flow as tcp_dst.
  auto it = pending_.end();
  if (has_src) {
    auto f = pending_.find(tcp_src);
    if (f != pending_.end() && (!has_dst || f->second.dst_port == tcp_dst)) it = f;
  }
  if (it == pending_.end() && has_dst) {
    auto r = pending_.find(tcp_dst);
    if (r != pending_.end() && (!has_src || r->second.dst_port == tcp_src)) it = r;
  }
  // Not outstanding: a later flow of a completed setup, or one we gave up on.
  if (it == pending_.end()) return;
  if (++it->second.flow_mods < needed) return;
  rtts.push_back(now_ns - it->second.sent_ns);
  ++counters_.setups;
  pending_.erase(it);
}

std::size_t SimSwitch::expire(std::int64_t deadline_ns) {
  std::size_t n = 0;
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second.sent_ns < deadline_ns) {
      it = pending_.erase(it);
      ++n;
    } else {
      ++it;
    }
  }
  counters_.timeouts += n;
  return n;
}

}  // namespace cw::ofload
