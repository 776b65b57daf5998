// Lua scripts on the decision path (issue 5; docs/scripts.md comes with the daemon's side).
//
// One Script is one Lua 5.4 state running one script's text, sandboxed: only the base library
// without its file and code loaders, and string (without dump), table, math, utf8 and
// coroutine. Every call has an instruction budget (counted once the call has run a tick of the
// watchdog: watchdog.h) and the state a memory cap; a script that raises an error, exceeds
// either or loops is disabled for good (until it is loaded again) and says why. Lua is Debian's C++ build (lua5.4-c++): its errors unwind as C++ exceptions,
// so nothing in cellwalld is skipped by a longjmp.
//
// Three ways to write one, mixed freely:
//  - on_packet(pkt): pkt's fields (frame, cell, app, in_port, ip_src, ip_dst, proto, port_src,
//    port_dst, tcp_flags, names, process) are read on demand; it returns a verdict. pkt is a
//    view of the packet being handled (no table is built per packet): keep fields, not pkt;
//  - run(): a long-running coroutine that gets each packet as the value of coroutine.yield()
//    and yields the packet's verdict: `local pkt = coroutine.yield()` ...
//    `pkt = coroutine.yield("drop")`;
//  - the seed style below.
// Seed style (the BitVisor/Lua SDN design's scripts run unmodified): every global function
// named filter_* is called with the Ethernet frame as a string, with the per-packet globals
// ip_src, ip_dst, port_src, port_dst, IP_HEADER_LEN and TCP_HEADER_LEN (this packet's header
// lengths, options included) set for the packet, the constants ETH_HEADER_LEN, TCP, UDP, ICMP,
// TELNET... defined, and the verb drop(ip_src, port_dst). Every call (packet or timer) starts
// with the packet's own per-packet globals: what a script assigns to one lasts until the call
// ends (outside a packet call they are nil).
//
// Not thread-safe: a Script belongs to one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/result.h"

namespace cw::script {

struct Limits {
  std::size_t memory_bytes = std::size_t{16} << 20;
  std::uint64_t instructions_per_call = 200000;
};

// A setting the script reads as config.<key> (from cellwalld's configuration).
struct Setting {
  std::string key;
  std::variant<std::int64_t, double, bool, std::string> value;
};

// The monotonic clock the timers and now() use, in ms.
std::int64_t monotonicMs();

enum class Verdict { kContinue, kAllow, kDrop, kReject };
const char* verdictName(Verdict v);

// What a script is shown of one packet (IPv4; ports 0 when the protocol has none).
struct Packet {
  // The names the cell resolved for ip_dst, comma-separated: asked for only when a script
  // reads them (they take the cell's name-table lock).
  struct Names {
    virtual ~Names() = default;
    virtual std::string_view get() const = 0;
  };

  std::string_view frame;  // the whole Ethernet frame
  std::uint32_t cell = 0;
  std::string_view app;
  std::uint32_t in_port = 0;
  std::uint32_t ip_src = 0, ip_dst = 0;  // host byte order
  std::uint16_t port_src = 0, port_dst = 0;
  std::uint8_t proto = 0;
  std::uint8_t tcp_flags = 0;
  const Names* names = nullptr;
  std::string_view direction = "out";  // "out": sent by the cell; "in": towards it
  std::int64_t now_ms = 0;  // monotonic ms the caller handles it at (now()); 0: read the clock
  std::string_view process;  // "" until process attribution exists
};

// What a script's flow applies to. A zero field matches anything; a prefix length of 0 means
// any address.
struct Match {
  std::uint32_t cell = 0;  // packets coming from this cell's port
  std::uint32_t ip_src = 0, ip_dst = 0;  // host byte order
  std::uint8_t src_len = 0, dst_len = 0;  // prefix lengths, 0..32
  std::uint8_t proto = 0;
  std::uint16_t port_src = 0, port_dst = 0;
  bool matches(const Packet& p) const;
  std::string str() const;  // "ip_src=10.0.0.5 port_dst=23"
};

// A flow a script asked for. In cellwalld it goes to the bridge's script table (after
// anti-spoofing, before the connections): docs/scripts.md.
struct FlowRequest {
  enum class Action : std::uint8_t {
    kDrop,   // dropped
    kAllow,  // on to the connection table, past every lower-priority script flow
    kLimit,  // through a meter (rate_pps or rate_kbps, burst), then on to the connections
  };
  Match match;
  Action action = Action::kDrop;
  std::uint16_t priority = 100;  // 0..999, within the script table
  std::uint16_t idle = 0, hard = 0;  // seconds, 0: none
  std::uint32_t cookie = 0;  // the script's own: remove_flows(cookie) removes them
  std::uint32_t rate_pps = 0, rate_kbps = 0, burst = 0;
};
const char* actionName(FlowRequest::Action a);

// What a call asked for besides its verdict.
struct Effects {
  std::vector<FlowRequest> flows;
  std::vector<std::uint32_t> removes;  // remove_flows(cookie)
  std::vector<std::string> logs;
  std::vector<std::pair<std::string, std::int64_t>> counts;  // count(name, n)
  bool empty() const { return flows.empty() && removes.empty() && logs.empty() && counts.empty(); }
};

class Script {
 public:
  static Expected<std::unique_ptr<Script>> load(std::string name, std::string_view text, Limits limits = {},
                                                const std::vector<Setting>& settings = {});
  ~Script();
  Script(const Script&) = delete;
  Script& operator=(const Script&) = delete;

  // Calls on_packet, then the run() coroutine, then the filter_* functions in name order. The
  // first that gives a verdict ("allow", "drop", "reject") decides; nil or "continue" goes on.
  // A drop flow asked for in the call that matches the packet makes its verdict "drop".
  Verdict onPacket(const Packet& p, Effects& out);

  // Inspect mode: every global inspect_* function, in name order, with the packet (as
  // on_packet gets it); the first verdict decides. Called for every packet of a cell in
  // inspect mode, not only a connection's first.
  Verdict onInspect(const Packet& p, Effects& out);
  std::size_t inspectors() const { return inspectors_.size(); }

  // Timers (after(), every()): runs those due by now, each with its own budget. Returns how
  // many ran. nextTimer(): the monotonic time (ms) the next is due, or -1 for none.
  int runTimers(std::int64_t now_ms, Effects& out);
  std::int64_t nextTimer() const;

  const std::string& name() const { return name_; }
  bool disabled() const { return !why_disabled_.empty(); }
  const std::string& whyDisabled() const { return why_disabled_; }
  std::size_t memoryUsed() const;
  std::size_t filters() const { return filters_.size(); }
  std::uint64_t calls() const { return calls_; }
  // What the script's top level asked for while it loaded (flows, logs, counts).
  Effects takeLoadEffects();

  struct State;

 private:
  Script() = default;
  void disable(std::string why);
  // A packet call's set-up and end: the verdict (a matching drop flow makes it "drop"), or none
  // if the call failed, which disables the script.
  void beginCall(const Packet& p, Effects& out);
  Verdict endCall(Verdict verdict, std::string failed);

  std::string name_;
  std::unique_ptr<State> state_;
  std::vector<std::string> filters_;
  std::vector<std::string> inspectors_;
  std::string why_disabled_;
  std::uint64_t calls_ = 0;
  Effects load_effects_;
};

}  // namespace cw::script
