// What cellwalld does with what the packet path sees, off the packet path's critical work:
//  - DNS snooping: resolver answers are parsed on the switch thread (pure, ~0.5 µs) and their
//    names recorded in the cell's name table, before the next Packet-In of that switch (so an
//    app's connection right after its lookup already sees the names);
//  - decisions are queued for the control thread, which logs them and persists connection
//    counts in batches. The queue is bounded; what does not fit is counted, never blocks.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "path/packet_path.h"
#include "dns/dns.h"

namespace cw::path {

struct DecisionEvent {
  std::int64_t time_ms = 0;  // unix
  std::uint32_t cell = 0;
  std::string app;
  std::string proto, remote_ip;
  std::uint16_t remote_port = 0;
  std::string names;
  std::string verdict;
  std::uint32_t rule_id = 0;
  std::string reason;
  std::uint32_t counted_rule = 0;
  bool allowed = false;
  std::uint8_t ip_proto = 0;
  std::uint32_t remote4 = 0;    // the remote IPv4 address, for matching the flows' counters
  std::uint16_t local_port = 0;  // the cell's port
  std::shared_ptr<const decide::ProcessInfo> process;  // null: not attributed
  // From the view the decision used (CellPort::vm), not looked up when the row is written: the
  // cell may be gone by then (events wait up to 250 ms), and its row must still say why it
  // has no process.
  bool vm = false;
};

class Observer : public PacketObserver {
 public:
  static constexpr std::size_t kMaxQueued = 100000;
  static constexpr std::size_t kMaxTcpStreams = 256;

  void onResolverAnswer(const decide::CellPort& cell, const packet::Frame& frame,
                        std::vector<dns::Mapping>* learned) override;
  void onDecision(const decide::CellPort* cell, const decide::Decision& d, const packet::Frame& frame,
                  decide::Now now) override;
  // Set once before switches connect: where held connections go (the daemon's prompts).
  std::function<void(const decide::CellPort&, const decide::Decision&, const packet::Frame&,
                     std::uint64_t, std::uint32_t, decide::Now)>
      on_held;
  void onHeld(const decide::CellPort& cell, const decide::Decision& d, const packet::Frame& frame,
              std::uint64_t dpid, std::uint32_t in_port, decide::Now now) override {
    if (on_held) on_held(cell, d, frame, dpid, in_port, now);
  }

  // Control thread: takes what was queued since the last call.
  std::vector<DecisionEvent> drain();

  std::uint64_t answersParsed() const { return parsed_.load(std::memory_order_relaxed); }
  std::uint64_t namesLearned() const { return learned_.load(std::memory_order_relaxed); }
  std::uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  std::uint64_t dnsErrors(dns::ParseError e) const {
    return dns_errors_[static_cast<std::size_t>(e)].load(std::memory_order_relaxed);
  }

 private:
  void learn(const decide::CellPort& cell, Bytes message, std::int64_t now_mono,
             std::vector<dns::Mapping>* learned = nullptr);
  std::vector<std::vector<std::uint8_t>> tcpMessages(const decide::CellPort& cell, const packet::Frame& f);

  std::mutex mu_;
  std::vector<DecisionEvent> queue_;
  std::mutex tcp_mu_;
  // (cell, cell port, resolver port) -> the answer stream of one DNS-over-TCP connection.
  std::map<std::tuple<std::uint32_t, std::uint16_t, std::uint16_t>, dns::TcpFramer> tcp_;
  std::atomic<std::uint64_t> parsed_{0}, learned_{0}, dropped_{0};
  std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(dns::ParseError::kCount)> dns_errors_{};
};

}  // namespace cw::path
