// The IDS engine: captured Ethernet frames in, alerts out.
//
//   LoadReport report;
//   auto rules = compileRules(text, defaultVariables(), report);   // once, shared
//   Engine engine(*rules, Limits{});                                 // one per thread
//   std::vector<Alert> alerts;
//   engine.onFrame(frame_bytes, now_ns, alerts);                    // each frame
//   engine.expire(now_ns);                                           // now and then
//
// An Engine is single-threaded (its flow table, Hyperscan scratch and stream states are its
// own) and holds a reference to its RuleSet. onFrame() never fails: a frame it cannot parse
// is counted and ignored. It does no I/O and reads no clock; `now_ns` is any monotonic time.
// What is matched and how: docs/ids.md.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/net.h"
#include "ids/rule_set.h"

namespace cw::ids {

struct Alert {
  std::uint32_t sid = 0, rev = 0;
  std::string msg;
  // The packet that completed the match.
  IpAddr src, dst;
  std::uint16_t sport = 0, dport = 0;
  std::uint8_t proto = 0;   // IP protocol number
  bool from_client = true;  // the packet went from the flow's initiator to its responder
  std::uint64_t time_ns = 0;
};

struct Limits {
  std::size_t max_flows = 65536;                    // beyond: the least recently used flow goes
  std::uint64_t idle_timeout_ns = 300'000'000'000;  // 5 minutes without a packet
  std::uint64_t stream_depth = 1 << 20;             // bytes inspected per TCP direction
  std::size_t ooo_limit = 64 * 1024;                // out-of-order bytes held per TCP direction
  std::size_t pcre_window = 4096;                   // stream bytes PCRE2 patterns look back over
  std::size_t max_threshold_entries = 65536;        // threshold/detection_filter trackers
};

// Counters; every way input is bad or dropped has one.
struct Stats {
  std::uint64_t frames = 0, bytes = 0;
  std::uint64_t parse_errors = 0;  // parseFrame refused the frame
  std::uint64_t not_ip = 0;        // ARP and others: not inspected
  std::uint64_t fragments = 0;     // later IP fragments: not inspected (no defragmentation)
  std::uint64_t flows = 0;         // flows now in the table
  std::uint64_t flows_created = 0, flows_closed = 0, flows_expired = 0, flow_evictions = 0;
  std::uint64_t stream_bytes = 0;   // TCP bytes fed to Hyperscan in order
  std::uint64_t trimmed_bytes = 0;  // retransmitted TCP bytes not inspected twice
  std::uint64_t out_of_order = 0;   // TCP segments held for a hole
  std::uint64_t gaps = 0;           // TCP directions whose inspection a hole ended
  std::uint64_t depth_reached = 0;  // TCP directions inspected up to stream_depth
  std::uint64_t alerts = 0;
  std::uint64_t alerts_suppressed = 0;  // held back by threshold/detection_filter
  std::uint64_t scan_errors = 0;        // Hyperscan or PCRE2 failures (e.g. PCRE2 match limit)
};

class Engine {
 public:
  Engine(std::shared_ptr<const RuleSet> rules, Limits limits = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // One captured Ethernet frame; appends the alerts it raises to `out`.
  void onFrame(Bytes frame, std::uint64_t now_ns, std::vector<Alert>& out);
  // Forgets flows idle for longer than limits.idle_timeout_ns. onFrame also expires a few
  // flows on each call, so this is needed only when traffic stops.
  void expire(std::uint64_t now_ns);
  Stats stats() const;
  const RuleSet& rules() const { return *rules_; }

 private:
  struct Impl;
  std::shared_ptr<const RuleSet> rules_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cw::ids
