// Prompts: the connections held for an answer (an app's default = "prompt"), as questions.
//
// A question is one (app, protocol, remote address, remote port): the first packet of an
// unknown connection opens it; that connection's retransmissions and the app's further
// connections to the same destination join it instead of asking again. Each question keeps
// the packets it holds (bounded per question and in all) so that an answer can release them:
// the daemon hands them back to path::PacketPath::release on their switch's thread.
//
// Threading: hold() runs on switch threads; everything else on the control thread. One mutex;
// nothing slow happens under it. `on_change` (set once, before switches connect) is called
// after a question opens or another connection joins one, outside the lock, so the daemon can
// wake whoever waits for prompts. Questions taken, expired or forgotten: the caller tells.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "common/net.h"
#include "decide/decider.h"
#include "policy/policy.h"

namespace cw::daemon {

struct HeldPacket {
  std::uint64_t dpid = 0;
  std::uint32_t in_port = 0;
  std::vector<std::uint8_t> frame;
};

struct Question {
  std::uint64_t id = 0;
  std::string app;
  std::uint32_t cell_id = 0;  // the cell that asked first
  policy::Protocol proto = policy::Protocol::kAny;
  IpAddr remote;
  std::uint16_t port = 0;     // 0 for protocols without ports
  std::string names;          // what the cell resolved for the address, comma-separated
  std::int64_t asked_unix_ms = 0;
  std::int64_t deadline_mono_ms = 0;
  policy::Action timeout_action = policy::Action::kDeny;
  std::uint32_t connections = 0;  // distinct connections held (by source port)
  std::uint32_t dropped = 0;      // packets not held: the question's or the store's bound
  std::vector<HeldPacket> held;
  std::shared_ptr<const decide::ProcessInfo> process;  // the first asker's owner, if attributed
  bool vm = false;  // the first asker is a VM cell's (CellPort::vm): why there is no process
};

class Prompts {
 public:
  struct Limits {
    std::size_t max_questions = 256;
    std::size_t max_packets_per_question = 32;
    std::size_t max_bytes = std::size_t{4} << 20;  // held frames, in all
  };
  enum class Held { kNew, kJoined, kFull };

  Prompts() : Prompts(Limits{}) {}
  explicit Prompts(Limits limits) : limits_(limits) {}
  void setOnChange(std::function<void()> fn) { on_change_ = std::move(fn); }

  // Holds one packet of a connection no rule covers. kFull: the store is at its bounds and
  // opened no question; the caller applies the app's timeout action at once.
  struct Ask {
    std::string app;
    std::uint32_t cell_id = 0;
    policy::Protocol proto = policy::Protocol::kAny;
    IpAddr remote;
    std::uint16_t port = 0;
    std::uint16_t local_port = 0;  // tells the app's connections apart
    std::string names;
    std::shared_ptr<const decide::ProcessInfo> process;
    bool vm = false;
    std::int64_t now_unix_ms = 0, now_mono_ms = 0;
    std::int64_t timeout_ms = 0;
    policy::Action timeout_action = policy::Action::kDeny;
  };
  Held hold(const Ask& ask, HeldPacket packet);

  // An open question, without its packets.
  std::optional<Question> find(std::uint64_t id) const;
  // Removes a question and returns it with its packets (to answer it), if it is still open.
  std::optional<Question> take(std::uint64_t id);
  // Removes and returns the questions whose deadline passed.
  std::vector<Question> expired(std::int64_t now_mono_ms);
  // Drops what a cell held (it exited); questions left with no packet go too. Returns those.
  std::vector<Question> forgetCell(std::uint32_t cell_id);
  // The open questions, without their packets, oldest first.
  std::vector<Question> list() const;
  // Grows by one each time a question opens or closes: a waiter compares it with what it saw.
  std::uint64_t version() const;
  std::size_t heldBytes() const;

 private:
  using Key = std::tuple<std::string, policy::Protocol, IpAddr, std::uint16_t>;
  Question removeLocked(std::map<std::uint64_t, Question>::iterator it);

  Limits limits_;
  std::function<void()> on_change_;
  mutable std::mutex mu_;
  std::map<std::uint64_t, Question> by_id_;
  std::map<Key, std::uint64_t> by_key_;
  std::map<std::uint64_t, std::set<std::pair<std::uint32_t, std::uint16_t>>> conns_;  // id -> (cell, port)
  std::uint64_t next_id_ = 1;
  std::uint64_t version_ = 0;
  std::size_t bytes_ = 0;
};

}  // namespace cw::daemon
