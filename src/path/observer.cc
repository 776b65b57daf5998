#include "path/observer.h"

#include "common/bytes.h"
#include "packet/frame.h"

namespace cw::path {

namespace {

std::uint32_t tcpSeq(const packet::Frame& f) {
  ByteReader r(f.raw);
  r.skip(f.l4_offset + 4);
  return r.u32();
}

const char* protoName(const packet::Frame& f) {
  switch (f.l4) {
    case packet::L4::kTcp: return "tcp";
    case packet::L4::kUdp: return "udp";
    case packet::L4::kIcmp: return "icmp";
    default: return "ip";
  }
}

}  // namespace

void Observer::learn(const decide::CellPort& cell, Bytes message, std::int64_t now_mono,
                     std::vector<dns::Mapping>* learned) {
  auto answer = dns::parseResponse(message);
  if (!answer) {
    dns_errors_[static_cast<std::size_t>(answer.error())].fetch_add(1, std::memory_order_relaxed);
    return;
  }
  parsed_.fetch_add(1, std::memory_order_relaxed);
  if (answer->mappings.empty() || !cell.runtime) return;
  std::lock_guard lock(cell.runtime->mu);
  for (const auto& m : answer->mappings) cell.runtime->names.record(m.name, m.ip, m.ttl, now_mono);
  learned_.fetch_add(answer->mappings.size(), std::memory_order_relaxed);
  if (learned != nullptr) learned->insert(learned->end(), answer->mappings.begin(), answer->mappings.end());
}

std::vector<std::vector<std::uint8_t>> Observer::tcpMessages(const decide::CellPort& cell,
                                                             const packet::Frame& f) {
  std::lock_guard lock(tcp_mu_);
  auto key = std::make_tuple(cell.cell_id, f.dst_port, f.src_port);
  std::uint32_t seq = tcpSeq(f);
  bool syn = (f.tcp_flags & packet::kTcpSyn) != 0;
  bool end = (f.tcp_flags & (packet::kTcpFin | packet::kTcpRst)) != 0;
  std::vector<std::vector<std::uint8_t>> out;
  if (syn) {
    // The resolver's SYN-ACK starts the answer stream: its first byte is seq + 1. Streams
    // whose start was not seen are never framed (guessing where messages begin is unsafe).
    if (tcp_.size() >= kMaxTcpStreams) tcp_.erase(tcp_.begin());
    tcp_.insert_or_assign(key, dns::TcpFramer(seq + 1));
    return out;
  }
  auto it = tcp_.find(key);
  if (it == tcp_.end()) return out;
  if (!f.payload.empty()) out = it->second.feed(seq, f.payload);
  if (end || it->second.lost()) tcp_.erase(it);
  return out;
}

void Observer::onResolverAnswer(const decide::CellPort& cell, const packet::Frame& frame,
                                std::vector<dns::Mapping>* learned) {
  std::int64_t now = clockNow().mono_ms;
  if (frame.isUdp()) {
    learn(cell, frame.payload, now, learned);
  } else if (frame.isTcp()) {
    for (const auto& m : tcpMessages(cell, frame)) learn(cell, Bytes(m.data(), m.size()), now, learned);
  }
}

void Observer::onDecision(const decide::CellPort* cell, const decide::Decision& d, const packet::Frame& f,
                          decide::Now now) {
  if (cell == nullptr && d.counted_rule == 0) return;  // replies from the uplink: not new connections
  DecisionEvent e;
  e.time_ms = now.unix_ms;
  e.cell = d.cell_id;
  if (cell != nullptr) {
    e.app = cell->app;
    e.vm = cell->vm;
  }
  e.proto = protoName(f);
  bool inbound = d.reason == decide::Reason::kInboundRule || d.inbound;
  bool ports = f.isTcp() || f.isUdp();
  if (f.isIp()) e.remote_ip = inbound ? f.ip_src.str() : f.ip_dst.str();
  e.remote_port = !ports ? 0 : inbound ? f.src_port : f.dst_port;
  e.names = d.names;
  e.verdict = policy::actionName(d.action);
  e.rule_id = d.rule_id;
  e.reason = decide::reasonName(d.reason);
  if (!d.script.empty()) e.reason.append(":").append(d.script);
  if (!d.detail.empty()) e.reason.append(":").append(d.detail);
  e.counted_rule = d.counted_rule;
  e.allowed = d.action == policy::Action::kAllow;
  e.ip_proto = f.ip_proto;
  e.remote4 = !f.isIpv4() ? 0 : inbound ? f.ip_src.v4().v : f.ip_dst.v4().v;
  e.local_port = !ports ? 0 : inbound ? f.dst_port : f.src_port;
  e.process = d.process;
  std::lock_guard lock(mu_);
  if (queue_.size() >= kMaxQueued && d.counted_rule == 0) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  queue_.push_back(std::move(e));
}

std::vector<DecisionEvent> Observer::drain() {
  std::vector<DecisionEvent> out;
  std::lock_guard lock(mu_);
  out.swap(queue_);
  return out;
}

}  // namespace cw::path
