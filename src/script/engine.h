// Lua scripts on the decision path (issue 5; docs/scripts.md comes with the daemon's side).
//
// One Script is one Lua 5.4 state running one script's text, sandboxed: only the base library
// without its file and code loaders, and string (without dump), table, math, utf8 and
// coroutine. Every call has an instruction budget and the state a memory cap; a script that
// raises an error, exceeds either or loops is disabled for good (until it is loaded again)
// and says why. Lua is Debian's C++ build (lua5.4-c++): its errors unwind as C++ exceptions,
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
// named filter_* is called with the Ethernet frame as a string, with the globals ip_src,
// ip_dst, port_src, port_dst set for the packet, the constants ETH_HEADER_LEN, IP_HEADER_LEN,
// TCP, UDP, ICMP, TELNET... defined, and the verb drop(ip_src, port_dst).
//
// Not thread-safe: a Script belongs to one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace cw::script {

struct Limits {
  std::size_t memory_bytes = std::size_t{16} << 20;
  std::uint64_t instructions_per_call = 200000;
};

enum class Verdict { kContinue, kAllow, kDrop, kReject };
const char* verdictName(Verdict v);

// What a script is shown of one packet (IPv4; ports 0 when the protocol has none).
struct Packet {
  std::string_view frame;  // the whole Ethernet frame
  std::uint32_t cell = 0;
  std::string_view app;
  std::uint32_t in_port = 0;
  std::uint32_t ip_src = 0, ip_dst = 0;  // host byte order
  std::uint16_t port_src = 0, port_dst = 0;
  std::uint8_t proto = 0;
  std::uint8_t tcp_flags = 0;
  std::string_view names;    // what the cell resolved to ip_dst, comma-separated
  std::string_view process;  // "" until process attribution exists
};

// What a call asked for besides its verdict.
struct Effects {
  struct Drop {
    std::uint32_t ip_src = 0;   // host byte order
    std::uint16_t port_dst = 0;  // 0: every port
  };
  std::vector<Drop> drops;
  std::vector<std::string> logs;
  std::vector<std::pair<std::string, std::int64_t>> counts;  // count(name, n)
};

class Script {
 public:
  static Expected<std::unique_ptr<Script>> load(std::string name, std::string_view text, Limits limits = {});
  ~Script();
  Script(const Script&) = delete;
  Script& operator=(const Script&) = delete;

  // Calls on_packet, then the run() coroutine, then the filter_* functions in name order. The
  // first that gives a verdict ("allow", "drop", "reject") decides; nil or "continue" goes on.
  Verdict onPacket(const Packet& p, Effects& out);

  const std::string& name() const { return name_; }
  bool disabled() const { return !why_disabled_.empty(); }
  const std::string& whyDisabled() const { return why_disabled_; }
  std::size_t memoryUsed() const;
  std::size_t filters() const { return filters_.size(); }
  std::uint64_t calls() const { return calls_; }

  struct State;

 private:
  Script() = default;
  void disable(std::string why);

  std::string name_;
  std::unique_ptr<State> state_;
  std::vector<std::string> filters_;
  std::string why_disabled_;
  std::uint64_t calls_ = 0;
};

}  // namespace cw::script
