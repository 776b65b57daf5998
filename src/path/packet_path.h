// The Packet-In path as cellwalld runs it: view refresh, frame parse, decision, flows out;
// connections decided moments ago replayed as decided; inspect mode; held (prompt) packets
// handed out and released again. Its own library (cw_path, see README.md) so that the daemon,
// the benchmarks and the unit tests run exactly the same code; it includes nothing from
// src/daemon.
//
// Threading: handle() and release() run on switch threads, concurrently, each call on the
// thread of the Switch it is given; they take no lock of their own (a cell's runtime lock, for
// microseconds: its names, and whether it has a label's count flows). The replay cache and
// inspect mode's connection table are per switch thread (see packet_path.cc), keyed by the
// view's generation, so any new view decides everything again. Counters are relaxed atomics readable from any
// thread.
//
// Lifetime: the ViewHolder, the observer, the judge and the process finder outlive the last
// call. Errors: a frame that does not parse is counted (weirdCount) and dropped; a
// Packet-In of a switch the view does not know is ignored. No exceptions.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <vector>

#include "decide/decider.h"
#include "decide/net_view.h"
#include "ofp/messages.h"
#include "packet/frame.h"
#include "switch/switch.h"

namespace cw::path {

// What the packet path reports to the rest of the controller (the daemon's Observer,
// observer.h). Called on switch threads, concurrently; the frame is valid only during the call.
class PacketObserver {
 public:
  virtual ~PacketObserver() = default;
  // An answer of the environment's resolver to `cell` (DNS snooping). `learned` (may be null):
  // where the (name, address, ttl) mappings it recorded go.
  virtual void onResolverAnswer(const decide::CellPort& cell, const packet::Frame& frame,
                                std::vector<dns::Mapping>* learned) = 0;
  // A connection was decided (`cell` is the cell it belongs to, if any).
  virtual void onDecision(const decide::CellPort* cell, const decide::Decision& d,
                          const packet::Frame& frame, decide::Now now) = 0;
  // A connection of `cell` held for an answer (the app's default is "prompt"): keep the frame
  // (and where it came from) to release it later through PacketPath::release.
  virtual void onHeld(const decide::CellPort& /*cell*/, const decide::Decision& /*d*/,
                      const packet::Frame& /*frame*/, std::uint64_t /*dpid*/,
                      std::uint32_t /*in_port*/, decide::Now /*now*/) {}
};

// Both clocks, now: how the packet path reads them (the daemon reads them the same way).
decide::Now clockNow();

class PacketPath {
 public:
  explicit PacketPath(const decide::ViewHolder& views, decide::Timeouts timeouts = {},
                      PacketObserver* observer = nullptr)
      : views_(views), decider_(timeouts), observer_(observer) {}
  void setObserver(PacketObserver* o) { observer_ = o; }
  // Scripts asked before the app's rules, and about every packet of an inspected cell (null:
  // none). Set before the first packet.
  void setJudge(decide::PacketJudge* j) {
    decider_.setJudge(j);
    judge_ = j;
  }

  // Who owns connections (null: nobody is asked). Set before the first packet.
  void setProcessFinder(decide::ProcessFinder* f) { decider_.setProcessFinder(f); }

  void handle(sw::Switch& s, const ofp::PacketIn& pi);
  // Decides a held packet again, on the switch's thread: by the policy as it is now (an answer
  // made a rule), or by `held` (an answer that made none, a timeout). It is held again if the
  // policy still has no answer for it.
  void release(sw::Switch& s, std::uint32_t in_port, const std::vector<std::uint8_t>& frame,
               const decide::HeldVerdict* held);

  // On a switch thread: this thread's reader takes the current view now and hands back the one
  // it held (see ViewHolder::Reader::renew), for the caller to let go of where it chooses.
  std::shared_ptr<const decide::NetView> renewView() const;

  std::uint64_t reasonCount(decide::Reason r) const {
    return reasons_[static_cast<std::size_t>(r)].load(std::memory_order_relaxed);
  }
  std::uint64_t weirdCount(packet::ParseError e) const {
    return weirds_[static_cast<std::size_t>(e)].load(std::memory_order_relaxed);
  }
  // Queries of checked cells (resolve = "rules") refused because they did not read cleanly.
  std::uint64_t queryWeirdCount(dns::ParseError e) const {
    return query_weirds_[static_cast<std::size_t>(e)].load(std::memory_order_relaxed);
  }
  std::uint64_t allowed() const { return allowed_.load(std::memory_order_relaxed); }
  std::uint64_t answersSnooped() const { return answers_seen_.load(std::memory_order_relaxed); }
  // Packet-Ins of a connection decided moments ago, forwarded (or dropped) as decided.
  std::uint64_t repeats() const { return repeats_.load(std::memory_order_relaxed); }
  std::uint64_t denied() const { return denied_.load(std::memory_order_relaxed); }
  // Inspect mode: packets of inspected cells handled, and those an inspect_* function refused.
  std::uint64_t inspected() const { return inspected_.load(std::memory_order_relaxed); }
  std::uint64_t inspectRefused() const { return inspect_refused_.load(std::memory_order_relaxed); }
  // Connections the switch decided by its rules' flows (their copies, logged), and of those,
  // how many the controller would have decided by another rule: 0, or the rule flows are wrong.
  std::uint64_t switchDecided() const { return switch_decided_.load(std::memory_order_relaxed); }
  std::uint64_t switchDisagreed() const { return switch_disagreed_.load(std::memory_order_relaxed); }

  // Sends the count flows of (cell, label) unless the cell has them (its runtime's `counted`,
  // under its lock). Any switch thread; the daemon calls it for the rules of a cell whose
  // switch-decided connections are not copied to the controller (CellPort::log_copies off).
  static void ensureCountFlows(sw::Switch& s, const decide::CellPort& cell, std::uint64_t label);

 private:
  decide::ViewHolder::Reader& reader() const;
  // Learns from an answer of the resolver to cell `cell_id` (`learned`: what it recorded);
  // the cell, or null when the address is no longer that cell's.
  const decide::CellPort* snoop(const decide::SwitchView& sv, std::uint32_t cell_id, const packet::Frame& frame,
                                std::vector<dns::Mapping>* learned);
  void releaseAnswer(sw::Switch& s, const decide::SwitchView& sv, const ofp::PacketIn& pi, const packet::Frame& frame);
  void noteSwitchDecided(sw::Switch& s, const decide::SwitchView& sv, const ofp::PacketIn& pi,
                         const packet::Frame& f, decide::Now now);
  // Inspect mode: the packet through the inspect_* functions, then on as its connection was
  // decided (decided now if it is new), sent by the controller itself.
  void inspectPacket(sw::Switch& s, const decide::SwitchView& sv, const decide::CellPort& cell,
                     std::uint32_t in_port, const packet::Frame& f, bool inbound, std::uint64_t generation,
                     decide::Now now);
  void apply(sw::Switch& s, const decide::SwitchView& sv, std::uint32_t in_port,
             const packet::Frame& frame, const decide::Decision& d, decide::Now now);
  // The count flows of (cell, label) the cell does not have yet (Decision::counts): sent before
  // the decision's packet-outs, so every later packet of the connection is counted under its
  // rule. Takes the cell's runtime lock for a set lookup.
  void installCounts(sw::Switch& s, const decide::SwitchView& sv, std::uint32_t ofport, std::uint32_t cell_id,
                     std::uint64_t label);
  // What every decision does first, in both paths: count its reason (and a bad query's), and
  // send what the scripts asked for (meters, flows) ahead of the decision's own messages.
  void countAndSendScriptRequests(sw::Switch& s, const decide::Decision& d);
  bool replayRecent(sw::Switch& s, std::uint32_t in_port, const packet::Frame& f,
                    std::uint64_t generation, std::int64_t now_ms);
  void rememberDecision(std::uint32_t in_port, const packet::Frame& f, const decide::Decision& d,
                        std::uint64_t generation, std::int64_t now_ms);

  const decide::ViewHolder& views_;
  decide::Decider decider_;
  PacketObserver* observer_;
  decide::PacketJudge* judge_ = nullptr;
  std::atomic<std::uint64_t> inspected_{0}, inspect_refused_{0};
  std::atomic<std::uint64_t> switch_decided_{0}, switch_disagreed_{0};
  std::atomic<std::uint64_t> answers_seen_{0};
  std::atomic<std::uint64_t> repeats_{0};
  std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(decide::Reason::kCount)> reasons_{};
  std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(packet::ParseError::kCount)> weirds_{};
  std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(dns::ParseError::kCount)> query_weirds_{};
  std::atomic<std::uint64_t> allowed_{0}, denied_{0};
};

}  // namespace cw::path
