// What the decision path knows about the network: which cell sits on which switch port, its
// assigned MAC/IP and compiled policy, and each environment's gateway port.
//
// A NetView is immutable once published. The control thread builds a new one on every change
// (cell added/removed, policy reloaded) and publishes it through ViewHolder; switch threads
// pick it up without taking a lock per Packet-In (see ViewHolder).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <unordered_set>

#include "common/net.h"
#include "names/name_table.h"
#include "policy/policy.h"

namespace cw::decide {

// The two clocks a decision needs: names expire on the monotonic clock, rule lifetimes are
// wall-clock times (`until = 2026-12-01T10:00:00Z`).
struct Now {
  std::int64_t mono_ms = 0;
  std::int64_t unix_ms = 0;
};

// A rule's lifetime as the packet path enforces it. The daemon owns these and keeps the same
// object across recompiles, so a count survives policy changes. `used` counts connections the
// rule admitted; it is claimed with a compare-and-swap, so a rule for N connections admits
// exactly N even when switch threads race.
struct RuleLimit {
  std::int64_t until_ms = 0;   // 0: no time limit
  std::uint32_t max = 0;       // 0: no count limit
  std::atomic<std::uint32_t> used{0};
  bool usable(std::int64_t now_unix_ms) const {
    if (until_ms != 0 && now_unix_ms >= until_ms) return false;
    return max == 0 || used.load(std::memory_order_relaxed) < max;
  }
  // Takes one connection; false when the count ran out meanwhile.
  bool claim() {
    if (max == 0) return true;
    std::uint32_t u = used.load(std::memory_order_relaxed);
    while (u < max)
      if (used.compare_exchange_weak(u, u + 1, std::memory_order_relaxed)) return true;
    return false;
  }
};

// Something derived from a CompiledPolicy alone, computed on first use and kept with it (the
// policy is immutable once published, so it never goes stale). A copy of the policy starts
// without it: the copy may be changed before use. Thread-safe.
class PolicyDerived {
 public:
  PolicyDerived() = default;
  PolicyDerived(const PolicyDerived&) {}
  PolicyDerived& operator=(const PolicyDerived&) {
    std::lock_guard lock(mu_);
    value_.reset();
    return *this;
  }
  template <class T, class Make>
  std::shared_ptr<const T> get(Make make) const {
    std::lock_guard lock(mu_);
    if (!value_) value_ = std::make_shared<const T>(make());
    return std::static_pointer_cast<const T>(value_);
  }

 private:
  mutable std::mutex mu_;
  mutable std::shared_ptr<const void> value_;
};

// One app's policy as the packet path uses it: the immutable matcher plus the lifetimes of the
// rules that have one.
struct CompiledPolicy {
  std::shared_ptr<const policy::Matcher> matcher;
  std::unordered_map<std::uint32_t, std::shared_ptr<RuleLimit>> limits;  // by rule id
  // Counted rules retired because their count ran out (not removed by anyone): the connections
  // they admitted stay when the policy changes. A kept connection whose rule is gone otherwise
  // is decided again by the rules (decider.cc, Decider::again).
  std::shared_ptr<const std::unordered_set<std::uint32_t>> used_up;
  bool usedUp(std::uint32_t rule_id) const { return used_up != nullptr && used_up->count(rule_id) != 0; }
  // rule_flows.cc's ranking of the policy's flow keys (linear in the rules, ~7 ms at 10,000):
  // once per policy, not once per DNS answer.
  PolicyDerived flow_ranking;

  RuleLimit* limitOf(std::uint32_t rule_id) const {
    auto it = limits.find(rule_id);
    return it == limits.end() ? nullptr : it->second.get();
  }
  static std::shared_ptr<const CompiledPolicy> of(std::shared_ptr<const policy::Matcher> m) {
    auto p = std::make_shared<CompiledPolicy>();
    p->matcher = std::move(m);
    return p;
  }
};

// A cell's mutable state shared by the packet path and the control thread: the names it
// resolved (DNS snooping), and the labels whose count flows it has on the bridge (table 7:
// installed by the switch threads on first use, forgotten by the control thread when their rule
// goes or the bridge is programmed anew). Guarded by `mu`; held for microseconds.
struct CellRuntime {
  explicit CellRuntime(names::Limits l = {}) : names(l) {}
  mutable std::mutex mu;
  names::NameTable names;
  std::unordered_set<std::uint64_t> counted;
};

struct CellPort {
  std::uint32_t cell_id = 0;
  std::string app;
  std::string env;
  std::uint32_t ofport = 0;
  MacAddr mac;
  Ip4 ip;
  std::shared_ptr<const CompiledPolicy> policy;
  std::shared_ptr<CellRuntime> runtime;  // null: no names (tests, benchmarks)
  // Inspect mode: every packet of the cell reaches the controller and the scripts'
  // inspect_* functions (docs/scripts.md), not only a connection's first.
  bool inspect = false;
  // The IDS watches the cell: its allowed connections' packets from the cell are also copied
  // to the switch's IDS port (SwitchView::ids_port).
  bool ids = false;
  // A VM cell (api::CellInfo::backend "vm"): its app runs under the guest's kernel, which
  // attribution cannot see into, so its connections have no process; the log and prompts say
  // why.
  bool vm = false;
  // The cell's policy epoch (docs/pipeline.md): the connections it decided carry it in their
  // conntrack mark, and only those of the current epoch pass without the controller. The daemon
  // moves it on whenever a change of the app's rules may decide an open connection otherwise.
  std::uint32_t epoch = 1;
  // The switch decides the cell's new connections by its rules' flows (table 6, rule_flows.h)
  // instead of asking the controller: no script, inspect mode, IDS or attribution needs to see
  // them first, and its policy can be written as flows.
  bool switch_rules = false;
  std::uint32_t meter_id = 0;  // the cell's Packet-In meter (0: none)
  // Per-rule counters (docs/pipeline.md, table 7): the allow verdicts count each packet in the
  // count table. Off only to measure what they cost (cellwalld --rule-counters off).
  bool count = true;
  // The table-6 flows copy each connection's first packet to the controller for the log. Off
  // (cellwalld --log-switch-decided off): the switch-decided connections are counted per rule
  // (their count flows installed with the rule flows) but not logged.
  bool log_copies = true;
  // Scripts are loaded: they see what conntrack calls invalid from this cell too (a NULL, FIN
  // or Xmas scan is nothing but such packets), which is otherwise dropped by the switch.
  bool scripts_see_invalid = false;
};

// A cell's conntrack zone: its id (the daemon keeps ids in 1..65535, docs/pipeline.md), so a
// cell never matches another cell's connection.
inline std::uint16_t zoneOf(const CellPort& c) { return static_cast<std::uint16_t>(c.cell_id); }

// Whether the cell's queries to its environment's resolver are checked by the controller
// (policy resolve = "rules", docs/dns.md): then they reach the controller instead of going
// straight to the resolver. One answer for the base flows and the decider alike.
inline bool resolvesByRules(const CellPort& cell) {
  return cell.policy && cell.policy->matcher && cell.policy->matcher->restrictsResolution();
}

struct GatewayPort {
  std::string env;
  std::uint32_t ofport = 0;
  MacAddr mac;
  Ip4 ip;  // the gateway address cells use (and their DNS server)
};

// Everything on one switch (datapath).
struct SwitchView {
  std::uint64_t dpid = 0;
  std::unordered_map<std::uint32_t, CellPort> cells_by_port;
  std::unordered_map<std::uint32_t, std::uint32_t> cell_port_by_ip;  // Ip4::v -> ofport
  std::unordered_map<std::uint32_t, GatewayPort> gateways_by_port;
  std::unordered_map<std::string, std::uint32_t> gateway_port_by_env;
  // Whether any cell here is in inspect mode: without one, the packet path looks for none.
  bool any_inspect = false;
  // Where copies for the IDS go (docs/ids.md); 0: no IDS on this switch.
  std::uint32_t ids_port = 0;

  const CellPort* cellOnPort(std::uint32_t port) const {
    auto it = cells_by_port.find(port);
    return it == cells_by_port.end() ? nullptr : &it->second;
  }
  const CellPort* cellWithIp(Ip4 ip) const {
    auto it = cell_port_by_ip.find(ip.v);
    return it == cell_port_by_ip.end() ? nullptr : cellOnPort(it->second);
  }
  const GatewayPort* gatewayOnPort(std::uint32_t port) const {
    auto it = gateways_by_port.find(port);
    return it == gateways_by_port.end() ? nullptr : &it->second;
  }
  const GatewayPort* gatewayFor(const std::string& env) const {
    auto it = gateway_port_by_env.find(env);
    return it == gateway_port_by_env.end() ? nullptr : gatewayOnPort(it->second);
  }
};

struct NetView {
  std::uint64_t generation = 0;
  std::unordered_map<std::uint64_t, SwitchView> switches;

  const SwitchView* find(std::uint64_t dpid) const {
    auto it = switches.find(dpid);
    return it == switches.end() ? nullptr : &it->second;
  }
};

// Publishes NetViews. publish() (control thread) takes a mutex; readers keep their own
// shared_ptr and only check an atomic generation number per Packet-In, re-reading the
// pointer (under the mutex) when it changed: no lock and no refcount traffic on the packet
// path in the steady state.
class ViewHolder {
 public:
  ViewHolder() : view_(std::make_shared<const NetView>()) {}

  void publish(std::shared_ptr<const NetView> v) {
    std::lock_guard lock(mu_);
    view_ = std::move(v);
    generation_.store(view_->generation, std::memory_order_release);
  }
  std::shared_ptr<const NetView> current() const {
    std::lock_guard lock(mu_);
    return view_;
  }
  std::uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

  // A per-thread reader: refresh() is one atomic load unless the view changed.
  class Reader {
   public:
    explicit Reader(const ViewHolder& h) : holder_(h), view_(h.current()) {}
    const NetView& refresh() {
      if (holder_.generation() != view_->generation) view_ = holder_.current();
      return *view_;
    }
    // Takes the current view at once and hands back the one held before (possibly the same),
    // so that the caller chooses where an old view dies: a reader that sees no packets would
    // otherwise keep a replaced view, with every policy in it, until its next refresh().
    // Not while a reference from refresh() is in use on this thread.
    std::shared_ptr<const NetView> renew() {
      auto old = std::move(view_);
      view_ = holder_.current();
      return old;
    }

   private:
    const ViewHolder& holder_;
    std::shared_ptr<const NetView> view_;
  };

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const NetView> view_;
  std::atomic<std::uint64_t> generation_{0};
};

}  // namespace cw::decide
