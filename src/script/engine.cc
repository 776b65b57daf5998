#include "script/engine.h"

// Not lua.hpp: its extern "C" would not match the C++ build's symbols.
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iterator>

#include "common/net.h"
#include "script/watchdog.h"

namespace cw::script {

namespace {

constexpr int kHookEvery = 1000;  // instructions between budget checks
constexpr int kPacketArgs = 9;     // on_packet(pkt, proto, flags, src, dst, sport, dport, cell, inbound)

// The seed design's constants. IP_HEADER_LEN and TCP_HEADER_LEN are not among them: they are
// the packet's own (kPacketGlobals).
struct Constant {
  const char* name;
  lua_Integer value;
};
constexpr lua_Integer kEthHeaderSize = 14;  // the host hands scripts untagged frames only
constexpr Constant kConstants[] = {
    {"ETH_HEADER_LEN", kEthHeaderSize}, {"UDP_HEADER_LEN", 8}, {"ICMP", 1},  {"TCP", 6},
    {"UDP", 17},                        {"FTP", 21},           {"SSH", 22},  {"TELNET", 23},
    {"SMTP", 25},                       {"DNS", 53},           {"HTTP", 80}, {"HTTPS", 443},
};

// The seed style's per-packet globals: never stored in _G, answered from the packet being
// handled (_G's __index). A script may assign one; the value it gave lasts until its call ends,
// and every call starts from the packet's own (Script::State::freshPacketGlobals).
constexpr std::string_view kPacketGlobals[] = {"ip_src",   "ip_dst",        "port_src",
                                               "port_dst", "IP_HEADER_LEN", "TCP_HEADER_LEN"};
constexpr int kPacketGlobalCount = static_cast<int>(std::size(kPacketGlobals));

// Which of kPacketGlobals `k` is, or -1.
int packetGlobalIndex(std::string_view k) {
  for (int i = 0; i < kPacketGlobalCount; ++i)
    if (kPacketGlobals[i] == k) return i;
  return -1;
}

// A byte of the frame, or -1 past its end.
int frameByte(std::string_view frame, std::size_t at) {
  return at < frame.size() ? static_cast<unsigned char>(frame[at]) : -1;
}

// IP_HEADER_LEN: the IPv4 header's own length (IHL x 4, options included). The host hands
// scripts only frames it parsed as untagged IPv4, so the header is at ETH_HEADER_LEN; a frame
// without one (a test's bare Packet) reads as the minimum, 20.
lua_Integer ipHeaderSize(std::string_view frame) {
  const int b = frameByte(frame, kEthHeaderSize);
  if (b < 0 || (b >> 4) != 4 || (b & 15) < 5) return 20;
  return (b & 15) * 4;
}

// TCP_HEADER_LEN: the TCP header's own length (data offset x 4, options included); 20 for a
// packet that has no TCP header (another protocol, or a fragment after the first).
lua_Integer tcpHeaderSize(std::string_view frame, std::uint8_t proto) {
  if (proto != 6) return 20;
  const std::size_t ip = kEthHeaderSize;
  const int frag_hi = frameByte(frame, ip + 6), frag_lo = frameByte(frame, ip + 7);
  if (frag_hi < 0 || frag_lo < 0 || ((frag_hi & 0x1f) | frag_lo) != 0) return 20;
  const int offset = frameByte(frame, ip + static_cast<std::size_t>(ipHeaderSize(frame)) + 12);
  if (offset < 0 || (offset >> 4) < 5) return 20;
  return (offset >> 4) * 4;
}

std::string dotted(std::uint32_t v) { return Ip4{v}.str(); }

constexpr std::size_t kMaxTimers = 256;
constexpr std::size_t kMaxFlowsPerCall = 64;

std::uint32_t prefixMask(std::uint8_t len) { return len == 0 ? 0 : ~std::uint32_t{0} << (32 - len); }

std::string macAt(std::string_view frame, std::size_t at) {
  if (frame.size() < at + 6) return {};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < 6; ++i) {
    auto b = static_cast<unsigned char>(frame[at + i]);
    if (i > 0) out.push_back(':');
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

}  // namespace

std::int64_t monotonicMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

bool Match::matches(const Packet& p) const {
  if (cell != 0 && (p.cell != cell || p.direction != "out")) return false;
  if (src_len != 0 && ((p.ip_src ^ ip_src) & prefixMask(src_len)) != 0) return false;
  if (dst_len != 0 && ((p.ip_dst ^ ip_dst) & prefixMask(dst_len)) != 0) return false;
  if (proto != 0 && p.proto != proto) return false;
  if (port_src != 0 && p.port_src != port_src) return false;
  if (port_dst != 0 && p.port_dst != port_dst) return false;
  return true;
}

std::string Match::str() const {
  std::string out;
  auto add = [&out](const char* k, const std::string& v) {
    if (!out.empty()) out.push_back(' ');
    out.append(k).append("=").append(v);
  };
  if (cell != 0) add("cell", std::to_string(cell));
  auto cidr = [](std::uint32_t ip, std::uint8_t len) {
    return len == 32 ? dotted(ip) : dotted(ip).append("/").append(std::to_string(len));
  };
  if (src_len != 0) add("ip_src", cidr(ip_src, src_len));
  if (dst_len != 0) add("ip_dst", cidr(ip_dst, dst_len));
  if (proto != 0) add("proto", std::to_string(proto));
  if (port_src != 0) add("port_src", std::to_string(port_src));
  if (port_dst != 0) add("port_dst", std::to_string(port_dst));
  return out.empty() ? "any" : out;
}

const char* actionName(FlowRequest::Action a) {
  switch (a) {
    case FlowRequest::Action::kDrop: return "drop";
    case FlowRequest::Action::kAllow: return "allow";
    case FlowRequest::Action::kLimit: return "limit";
  }
  return "?";
}

const char* verdictName(Verdict v) {
  switch (v) {
    case Verdict::kContinue: return "continue";
    case Verdict::kAllow: return "allow";
    case Verdict::kDrop: return "drop";
    case Verdict::kReject: return "reject";
  }
  return "?";
}

struct Script::State final : watchdog::Armable {
  lua_State* L = nullptr;
  // The watchdog runs: a call starts without the count hook and is armed if it runs long
  // (watchdog.h). Otherwise the hook is set for good.
  bool watched = false;
  volatile std::sig_atomic_t armed = 0;  // this call's hook is set (by the watchdog, or by enter())
  lua_State* volatile running = nullptr;  // the Lua thread the call runs now: L, or co in a resume
  Limits limits;
  std::size_t used = 0;
  std::uint64_t steps = 0;
  bool over = false;  // the budget or the memory ran out: every instruction raises until the call ends
  std::string over_why;
  Effects* effects = nullptr;
  const Packet* packet = nullptr;
  std::int64_t call_ms = 0;  // now() during a call: the time the caller handles the packet at
  bool dropped_this = false;
  std::vector<int> refs;  // the filter functions, in name order
  // A packet function and how many of the packet arguments it declares (pushArgs): a function
  // that names only pkt is given only pkt.
  struct PacketFn {
    int ref = LUA_NOREF;
    int nargs = 0;
  };
  std::vector<PacketFn> inspect_fns;  // the inspect_* functions, in name order
  PacketFn on_packet;                 // on_packet(pkt, ...)
  int pkt = LUA_NOREF;        // the one packet userdata, reused: its fields are read on demand
  // What the script assigned to per-packet globals (kPacketGlobals) in this call: values in a
  // table with an array part of one slot each (made at load: setting a slot never allocates),
  // and which slots were assigned (a script may assign nil).
  int assigned_ref = LUA_NOREF;
  std::array<bool, kPacketGlobalCount> assigned{};
  bool any_assigned = false;
  lua_State* co = nullptr;    // run(), as a coroutine waiting in coroutine.yield()
  int co_ref = LUA_NOREF;
  struct Timer {
    lua_Integer id = 0;
    std::int64_t due_ms = 0;
    std::int64_t period_ms = 0;  // 0: once
    int fn = LUA_NOREF;
  };
  std::vector<Timer> timers;
  lua_Integer next_timer_id = 1;

  ~State() {
    if (L != nullptr) lua_close(L);
  }

  // A call into the script begins and ends (a packet, a timer, the top level): its budget.
  void enter() {
    freshPacketGlobals();
    steps = 0;
    armed = 0;
    running = L;
    if (!watchdog::begin(this) && watched) arm(L);  // not watched on this thread: counted from the start
  }
  void leave() {
    watchdog::end();
    running = nullptr;
    if (armed != 0 && watched) {
      for (lua_State* t : {L, co})
        if (t != nullptr) lua_sethook(t, nullptr, 0, 0);
    }
    armed = 0;
  }
  void arm(lua_State* t) {
    lua_sethook(t, &State::hook, LUA_MASKCOUNT, kHookEvery);
    armed = 1;
  }
  void armFromSignal() noexcept override {
    lua_State* t = running;
    if (over || t == nullptr) return;  // already made to stop at its next instruction
    arm(t);
  }

  void stopEverything(const char* why, lua_State* current = nullptr) {
    if (!over) over_why = why;
    over = true;
    std::atomic_signal_fence(std::memory_order_seq_cst);  // seen by the watchdog's handler before the hooks change
    for (lua_State* t : {L, co, current, static_cast<lua_State*>(running)})
      if (t != nullptr) lua_sethook(t, &State::hook, LUA_MASKCOUNT, 1);
  }

  // After a failed call: the hooks as a call starts with them.
  void rearm() {
    for (lua_State* t : {L, co}) {
      if (t == nullptr) continue;
      if (watched) lua_sethook(t, nullptr, 0, 0);
      else lua_sethook(t, &State::hook, LUA_MASKCOUNT, kHookEvery);
    }
  }

  // Every call starts with the packet's own values of the per-packet globals, whatever an
  // earlier call assigned to them: a seed-style script that sets port_dst for itself must not
  // freeze it for every later packet. Nothing here allocates (it runs outside any pcall).
  void freshPacketGlobals() {
    if (!any_assigned) return;
    lua_rawgeti(L, LUA_REGISTRYINDEX, assigned_ref);
    for (int i = 0; i < kPacketGlobalCount; ++i) {
      if (!assigned[static_cast<std::size_t>(i)]) continue;
      lua_pushnil(L);
      lua_rawseti(L, -2, i + 1);
      assigned[static_cast<std::size_t>(i)] = false;
    }
    lua_pop(L, 1);
    any_assigned = false;
  }

  static State* of(lua_State* L) {
    void* ud = nullptr;
    lua_getallocf(L, &ud);
    return static_cast<State*>(ud);
  }

  static void* alloc(void* ud, void* ptr, std::size_t osize, std::size_t nsize) {
    auto* st = static_cast<State*>(ud);
    const std::size_t old = ptr != nullptr ? osize : 0;
    if (nsize == 0) {
      st->used -= old;
      std::free(ptr);
      return nullptr;
    }
    if (nsize > old && st->used + (nsize - old) > st->limits.memory_bytes) {
      if (st->L != nullptr) st->stopEverything("memory cap exceeded");
      return nullptr;
    }
    void* p = std::realloc(ptr, nsize);
    if (p == nullptr) return nullptr;
    st->used = st->used - old + nsize;
    return p;
  }

  static void hook(lua_State* L, lua_Debug* /*ar*/) {
    State* st = of(L);
    st->steps += st->over ? 1 : kHookEvery;
    if (!st->over && st->steps > st->limits.instructions_per_call) st->stopEverything("instruction budget exceeded", L);
    if (st->over) luaL_error(L, "%s", st->over_why.c_str());
  }

  // A field of the packet being handled, pushed; false (nothing pushed) for another key, or
  // outside a call. seed_only: the four the seed style has as globals.
  static void pushDotted(lua_State* L, std::uint32_t v) {
    char buf[16];
    std::size_t n = 0;
    for (int shift = 24; shift >= 0; shift -= 8) {
      unsigned b = (v >> shift) & 0xff;
      if (b >= 100) buf[n++] = static_cast<char>('0' + b / 100);
      if (b >= 10) buf[n++] = static_cast<char>('0' + b / 10 % 10);
      buf[n++] = static_cast<char>('0' + b % 10);
      if (shift > 0) buf[n++] = '.';
    }
    lua_pushlstring(L, buf, n);
  }

  static void pushView(lua_State* L, std::string_view v) { lua_pushlstring(L, v.data(), v.size()); }

  // A field of the packet being handled, pushed; false (nothing pushed) for another key, or
  // outside a call. seed_only: the four the seed style has as globals. Dispatched on the key's
  // length first: this runs for every field a script reads.
  static bool pushField(lua_State* L, std::string_view k, bool seed_only) {
    const Packet* p = of(L)->packet;
    if (p == nullptr) return false;
    switch (k.size()) {
      case 6:
        if (k == "ip_src") return pushDotted(L, p->ip_src), true;
        if (k == "ip_dst") return pushDotted(L, p->ip_dst), true;
        return false;
      case 8:
        if (k == "port_dst") return lua_pushinteger(L, p->port_dst), true;
        if (k == "port_src") return lua_pushinteger(L, p->port_src), true;
        if (seed_only) return false;
        if (k == "ip_src_n") return lua_pushinteger(L, p->ip_src), true;
        if (k == "ip_dst_n") return lua_pushinteger(L, p->ip_dst), true;
        return false;
      case 13:
        if (k == "IP_HEADER_LEN") return lua_pushinteger(L, ipHeaderSize(p->frame)), true;
        return false;
      case 14:
        if (k == "TCP_HEADER_LEN") return lua_pushinteger(L, tcpHeaderSize(p->frame, p->proto)), true;
        return false;
      default: break;
    }
    if (seed_only) return false;
    switch (k.size()) {
      case 3:
        if (k == "app") return pushView(L, p->app), true;
        return false;
      case 4:
        if (k == "cell") return lua_pushinteger(L, p->cell), true;
        return false;
      case 5:
        if (k == "proto") return lua_pushinteger(L, p->proto), true;
        if (k == "frame") return pushView(L, p->frame), true;
        if (k == "names") return pushView(L, p->names != nullptr ? p->names->get() : std::string_view()), true;
        return false;
      case 7:
        if (k == "in_port") return lua_pushinteger(L, p->in_port), true;
        if (k == "eth_src") return lua_pushstring(L, macAt(p->frame, 6).c_str()), true;
        if (k == "eth_dst") return lua_pushstring(L, macAt(p->frame, 0).c_str()), true;
        if (k == "process") return pushView(L, p->process), true;
        return false;
      case 9:
        if (k == "tcp_flags") return lua_pushinteger(L, p->tcp_flags), true;
        if (k == "direction") return pushView(L, p->direction), true;
        return false;
      default: return false;
    }
  }

  static std::string_view keyOf(lua_State* L) {
    std::size_t len = 0;
    const char* key = lua_tolstring(L, 2, &len);
    return key != nullptr ? std::string_view(key, len) : std::string_view();
  }

  // The packet's globals (kPacketGlobals) are not stored: _G's __index answers them from the
  // packet being handled, so a call costs nothing for those it does not read (formatting two
  // addresses for every packet was half the cost of an empty filter). One the script assigned
  // in this call reads as it assigned it.
  static int packetGlobal(lua_State* L) {
    const std::string_view k = keyOf(L);
    State* st = of(L);
    if (st->any_assigned) {
      const int i = packetGlobalIndex(k);
      if (i >= 0 && st->assigned[static_cast<std::size_t>(i)]) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, st->assigned_ref);
        lua_rawgeti(L, -1, i + 1);
        return 1;
      }
    }
    return pushField(L, k, true) ? 1 : 0;
  }

  // _G's __newindex (and rawset on _G): an assignment to a per-packet global is kept for the
  // rest of the call only; every other new global is stored as usual. Stack: t, k, v.
  static int setGlobal(lua_State* L) {
    const int i = lua_type(L, 2) == LUA_TSTRING ? packetGlobalIndex(keyOf(L)) : -1;
    if (i < 0) {
      lua_settop(L, 3);
      lua_rawset(L, 1);
      return 0;
    }
    State* st = of(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, st->assigned_ref);
    lua_pushvalue(L, 3);
    lua_rawseti(L, -2, i + 1);
    st->assigned[static_cast<std::size_t>(i)] = true;
    st->any_assigned = true;
    return 0;
  }

  // pkt.<field>: read from the packet being handled.
  static int packetField(lua_State* L) { return pushField(L, keyOf(L), false) ? 1 : 0; }

  // count(name, n): adds n (default 1) to the script's counter `name` (shown by the CLI/UI).
  static int count(lua_State* L) {
    State* st = of(L);
    std::size_t len = 0;
    const char* name = luaL_checklstring(L, 1, &len);
    const lua_Integer n = luaL_optinteger(L, 2, 1);
    if (len == 0 || len > 64) return luaL_error(L, "count: a name of 1-64 characters");
    if (st->effects != nullptr) {
      if (st->effects->counts.size() >= 64) return luaL_error(L, "count: more than 64 in one call");
      st->effects->counts.emplace_back(std::string(name, len), static_cast<std::int64_t>(n));
    }
    return 0;
  }

  // An address argument: "10.0.0.5", "10.0.0.0/8" or an integer (host byte order).
  static void readAddress(lua_State* L, int idx, const char* what, std::uint32_t& ip, std::uint8_t& len) {
    if (lua_type(L, idx) == LUA_TNUMBER) {
      lua_Integer v = luaL_checkinteger(L, idx);
      if (v < 0 || v > 0xffffffffLL) luaL_error(L, "%s: address out of range", what);
      ip = static_cast<std::uint32_t>(v);
      len = 32;
      return;
    }
    const char* text = luaL_checkstring(L, idx);
    std::string_view t(text);
    std::uint8_t l = 32;
    if (auto slash = t.find('/'); slash != std::string_view::npos) {
      int n = 0;
      for (char c : t.substr(slash + 1)) {
        if (c < '0' || c > '9' || n > 32) luaL_error(L, "%s: '%s' is not an IPv4 address or prefix", what, text);
        n = n * 10 + (c - '0');
      }
      if (slash + 1 == t.size() || n < 1 || n > 32) luaL_error(L, "%s: '%s': a prefix length is 1..32", what, text);
      l = static_cast<std::uint8_t>(n);
      t = t.substr(0, slash);
    }
    auto a = Ip4::parse(std::string(t));
    if (!a) luaL_error(L, "%s: '%s' is not an IPv4 address or prefix", what, text);
    ip = a->v & prefixMask(l);
    len = l;
  }

  static lua_Integer intField(lua_State* L, const char* what, const char* key, lua_Integer lo, lua_Integer hi) {
    int isnum = 0;
    lua_Integer v = lua_tointegerx(L, -1, &isnum);
    if (isnum == 0 || v < lo || v > hi)
      luaL_error(L, "%s: %s must be an integer %d..%d", what, key, static_cast<int>(lo), static_cast<int>(hi));
    return v;
  }

  static lua_Integer seconds(lua_State* L, const char* what, const char* key) {
    if (lua_type(L, -1) != LUA_TNUMBER) luaL_error(L, "%s: %s must be a number of seconds", what, key);
    lua_Number n = lua_tonumber(L, -1);
    if (!(n >= 0 && n <= 65535)) luaL_error(L, "%s: %s must be 0..65535 seconds", what, key);
    return static_cast<lua_Integer>(std::ceil(n));
  }

  // A flow described by the table at idx: match fields, then what to do and for how long.
  static FlowRequest readFlow(lua_State* L, int idx, const char* what, FlowRequest r) {
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
      if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "%s: keys are names (ip_src, port_dst, ...)", what);
      std::string_view k = lua_tostring(L, -2);
      if (k == "ip_src") readAddress(L, lua_gettop(L), what, r.match.ip_src, r.match.src_len);
      else if (k == "ip_dst") readAddress(L, lua_gettop(L), what, r.match.ip_dst, r.match.dst_len);
      else if (k == "proto") {
        if (lua_type(L, -1) == LUA_TSTRING) {
          std::string_view p = lua_tostring(L, -1);
          r.match.proto = p == "tcp" ? 6 : p == "udp" ? 17 : p == "icmp" ? 1 : 0;
          if (r.match.proto == 0) luaL_error(L, "%s: proto is \"tcp\", \"udp\", \"icmp\" or a number", what);
        } else {
          r.match.proto = static_cast<std::uint8_t>(intField(L, what, "proto", 1, 255));
        }
      }
      else if (k == "port_src") r.match.port_src = static_cast<std::uint16_t>(intField(L, what, "port_src", 0, 65535));
      else if (k == "port_dst") r.match.port_dst = static_cast<std::uint16_t>(intField(L, what, "port_dst", 0, 65535));
      else if (k == "cell") r.match.cell = static_cast<std::uint32_t>(intField(L, what, "cell", 0, 0xffffff));
      else if (k == "priority") r.priority = static_cast<std::uint16_t>(intField(L, what, "priority", 0, 999));
      else if (k == "idle") r.idle = static_cast<std::uint16_t>(seconds(L, what, "idle"));
      else if (k == "hard") r.hard = static_cast<std::uint16_t>(seconds(L, what, "hard"));
      else if (k == "cookie") r.cookie = static_cast<std::uint32_t>(intField(L, what, "cookie", 0, 0xffffffffLL));
      else if (k == "pps") r.rate_pps = static_cast<std::uint32_t>(intField(L, what, "pps", 1, 100000000));
      else if (k == "kbps") r.rate_kbps = static_cast<std::uint32_t>(intField(L, what, "kbps", 1, 100000000));
      else if (k == "burst") r.burst = static_cast<std::uint32_t>(intField(L, what, "burst", 0, 100000000));
      else if (k == "action") {
        std::string_view a = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
        if (a == "drop") r.action = FlowRequest::Action::kDrop;
        else if (a == "allow") r.action = FlowRequest::Action::kAllow;
        else if (a == "limit") r.action = FlowRequest::Action::kLimit;
        else luaL_error(L, "%s: action is \"drop\", \"allow\" or \"limit\"", what);
      }
      else luaL_error(L, "%s: unknown key '%s' (known: ip_src, ip_dst, proto, port_src, port_dst, cell, "
                         "action, priority, idle, hard, cookie, pps, kbps, burst)", what, lua_tostring(L, -2));
      lua_pop(L, 1);
    }
    if ((r.match.port_src != 0 || r.match.port_dst != 0) && r.match.proto != 0 && r.match.proto != 6 &&
        r.match.proto != 17)
      luaL_error(L, "%s: ports need proto tcp or udp (or no proto: both)", what);
    if (r.action == FlowRequest::Action::kLimit && (r.rate_pps == 0) == (r.rate_kbps == 0))
      luaL_error(L, "%s: a limit needs pps or kbps (one of them)", what);
    if (r.action != FlowRequest::Action::kLimit && (r.rate_pps != 0 || r.rate_kbps != 0 || r.burst != 0))
      luaL_error(L, "%s: pps, kbps and burst belong to a limit", what);
    return r;
  }

  static int addFlow(lua_State* L, const FlowRequest& r, const char* what) {
    State* st = of(L);
    if (st->effects != nullptr) {
      if (st->effects->flows.size() >= kMaxFlowsPerCall) return luaL_error(L, "%s: more than %d flows in one call", what, static_cast<int>(kMaxFlowsPerCall));
      st->effects->flows.push_back(r);
    }
    if (r.action == FlowRequest::Action::kDrop && st->packet != nullptr && r.match.matches(*st->packet))
      st->dropped_this = true;
    return 0;
  }

  // drop(ip, port): the seed verb: this source's traffic to that port (0 or nil: any) is
  // dropped from now on. drop{...}: a drop flow with a match and, optionally, priority,
  // timeouts and cookie.
  static int drop(lua_State* L) {
    if (lua_type(L, 1) == LUA_TTABLE) return addFlow(L, readFlow(L, 1, "drop", FlowRequest{}), "drop");
    FlowRequest r;
    readAddress(L, 1, "drop", r.match.ip_src, r.match.src_len);
    lua_Integer port = luaL_optinteger(L, 2, 0);
    if (port < 0 || port > 65535) return luaL_error(L, "drop: port out of range");
    r.match.port_dst = static_cast<std::uint16_t>(port);
    return addFlow(L, r, "drop");
  }

  // allow{...}: traffic matching goes on to the connections, past the script's lower-priority
  // flows (an exception to a wider drop).
  static int allow(lua_State* L) {
    FlowRequest r;
    r.action = FlowRequest::Action::kAllow;
    return addFlow(L, readFlow(L, 1, "allow", r), "allow");
  }

  // limit{..., pps= | kbps=, burst=}: traffic matching goes through a meter (QoS).
  static int limit(lua_State* L) {
    FlowRequest r;
    r.action = FlowRequest::Action::kLimit;
    return addFlow(L, readFlow(L, 1, "limit", r), "limit");
  }

  // flow{..., action = "drop" | "allow" | "limit"}.
  static int flow(lua_State* L) { return addFlow(L, readFlow(L, 1, "flow", FlowRequest{}), "flow"); }

  // remove_flows(cookie): the script's flows with that cookie.
  static int removeFlows(lua_State* L) {
    State* st = of(L);
    lua_Integer c = luaL_checkinteger(L, 1);
    if (c < 0 || c > 0xffffffffLL) return luaL_error(L, "remove_flows: a cookie is 0..4294967295");
    if (st->effects != nullptr) {
      if (st->effects->removes.size() >= kMaxFlowsPerCall) return luaL_error(L, "remove_flows: too many in one call");
      st->effects->removes.push_back(static_cast<std::uint32_t>(c));
    }
    return 0;
  }

  // now(): seconds on the monotonic clock (with ms).
  static int now(lua_State* L) {
    const State* st = of(L);
    const std::int64_t ms = st->call_ms > 0 ? st->call_ms : monotonicMs();
    lua_pushnumber(L, static_cast<lua_Number>(ms) / 1000.0);
    return 1;
  }

  // ip_str(n): an address given as a number (pkt.ip_src_n) as text.
  static int ipStr(lua_State* L) {
    lua_Integer v = luaL_checkinteger(L, 1);
    if (v < 0 || v > 0xffffffffLL) return luaL_error(L, "ip_str: not an IPv4 address");
    pushDotted(L, static_cast<std::uint32_t>(v));
    return 1;
  }

  static int addTimer(lua_State* L, bool repeat) {
    State* st = of(L);
    const char* what = repeat ? "every" : "after";
    lua_Number secs = luaL_checknumber(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    if (!(secs >= 0 && secs <= 86400 * 365)) return luaL_error(L, "%s: seconds out of range", what);
    if (repeat && secs < 0.01) return luaL_error(L, "every: at least 0.01 seconds");
    if (st->timers.size() >= kMaxTimers) return luaL_error(L, "%s: more than %d timers", what, static_cast<int>(kMaxTimers));
    Timer t;
    t.id = st->next_timer_id++;
    auto ms = static_cast<std::int64_t>(secs * 1000.0);
    t.due_ms = monotonicMs() + ms;
    t.period_ms = repeat ? ms : 0;
    lua_pushvalue(L, 2);
    t.fn = luaL_ref(L, LUA_REGISTRYINDEX);
    st->timers.push_back(t);
    lua_pushinteger(L, t.id);
    return 1;
  }
  static int after(lua_State* L) { return addTimer(L, false); }
  static int every(lua_State* L) { return addTimer(L, true); }

  // cancel(id): a timer that has not run yet (or a repeating one) is dropped.
  static int cancel(lua_State* L) {
    State* st = of(L);
    lua_Integer id = luaL_checkinteger(L, 1);
    auto it = std::find_if(st->timers.begin(), st->timers.end(), [id](const Timer& t) { return t.id == id; });
    if (it != st->timers.end()) {
      luaL_unref(st->L, LUA_REGISTRYINDEX, it->fn);
      st->timers.erase(it);
    }
    return 0;
  }

  // log(...): the arguments, as tostring() shows them, joined by spaces.
  static int log(lua_State* L) {
    State* st = of(L);
    std::string line;
    for (int i = 1, n = lua_gettop(L); i <= n; ++i) {
      std::size_t len = 0;
      const char* s = luaL_tolstring(L, i, &len);
      if (i > 1) line.push_back(' ');
      line.append(s, std::min<std::size_t>(len, 1024));
      lua_pop(L, 1);
    }
    if (st->effects != nullptr && st->effects->logs.size() < 16) st->effects->logs.push_back(std::move(line));
    return 0;
  }
};

namespace {

// Forwards a call to the function in upvalue 1 with the same arguments, keeping its results.
int forward(lua_State* L, int nresults) {
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, nresults);
  return lua_gettop(L);
}

// A coroutine the script makes counts its instructions from its start: the watchdog arms only
// the Lua thread a call runs in (L, or run()'s coroutine), never one the script made.
void budgetFromStart(lua_State* L, lua_State* co) {
  if (co == nullptr) return;
  const Script::State* st = Script::State::of(L);
  lua_sethook(co, &Script::State::hook, LUA_MASKCOUNT, st->over ? 1 : kHookEvery);
}

int coCreate(lua_State* L) {
  forward(L, 1);
  budgetFromStart(L, lua_tothread(L, -1));
  return 1;
}

int coWrap(lua_State* L) {
  forward(L, 1);  // a C closure with its coroutine as upvalue 1
  if (lua_getupvalue(L, -1, 1) != nullptr) {
    budgetFromStart(L, lua_tothread(L, -1));
    lua_pop(L, 1);
  }
  return 1;
}

// Lua runs finalizers with hooks off, so nothing could stop a __gc that loops: a script may not
// have one. (Only setmetatable marks a table for finalization, and only for a __gc it has then.)
int setMetatable(lua_State* L) {
  if (lua_type(L, 2) == LUA_TTABLE) {
    lua_pushliteral(L, "__gc");
    const bool gc = lua_rawget(L, 2) != LUA_TNIL;
    lua_pop(L, 1);
    if (gc) return luaL_error(L, "setmetatable: scripts cannot have __gc metamethods");
  }
  return forward(L, LUA_MULTRET);
}

// Replaces t[name] (t on the stack top) by f, with the original as f's upvalue.
void wrapField(lua_State* L, const char* name, lua_CFunction f) {
  lua_getfield(L, -1, name);
  lua_pushcclosure(L, f, 1);
  lua_setfield(L, -2, name);
}

// The function on the stack top, taken into the registry with how many packet arguments it
// declares.
Script::State::PacketFn packetFn(lua_State* L) {
  lua_Debug ar;
  lua_pushvalue(L, -1);
  lua_getinfo(L, ">u", &ar);
  Script::State::PacketFn f;
  f.nargs = ar.isvararg != 0 ? kPacketArgs : std::clamp<int>(ar.nparams, 1, kPacketArgs);
  f.ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return f;
}

// rawset(_G, name, v) for a per-packet global goes where an assignment goes: stored in _G, the
// name would hide the packet's value from every later call.
int rawSet(lua_State* L) {
  lua_pushglobaltable(L);
  const bool global = lua_rawequal(L, 1, -1) != 0;
  lua_pop(L, 1);
  if (global && lua_type(L, 2) == LUA_TSTRING && packetGlobalIndex(lua_tostring(L, 2)) >= 0) {
    lua_settop(L, 3);
    Script::State::setGlobal(L);
    lua_settop(L, 1);
    return 1;
  }
  return forward(L, LUA_MULTRET);
}

void wrapSandboxed(lua_State* L) {
  lua_pushglobaltable(L);
  wrapField(L, "setmetatable", &setMetatable);
  wrapField(L, "rawset", &rawSet);
  lua_getfield(L, -1, LUA_COLIBNAME);
  wrapField(L, "create", &coCreate);
  wrapField(L, "wrap", &coWrap);
  lua_pop(L, 2);
}

}  // namespace

Expected<std::unique_ptr<Script>> Script::load(std::string name, std::string_view text, Limits limits,
                                               const std::vector<Setting>& settings) {
  std::unique_ptr<Script> s(new Script);
  s->name_ = std::move(name);
  s->state_ = std::make_unique<State>();
  State& st = *s->state_;
  st.limits = limits;
  lua_State* L = lua_newstate(&State::alloc, &st);
  if (L == nullptr) return fail(s->name_ + ": cannot create a Lua state");
  st.L = L;
  // The safe libraries only.
  const luaL_Reg libs[] = {{LUA_GNAME, luaopen_base},          {LUA_STRLIBNAME, luaopen_string},
                           {LUA_TABLIBNAME, luaopen_table},    {LUA_MATHLIBNAME, luaopen_math},
                           {LUA_UTF8LIBNAME, luaopen_utf8},    {LUA_COLIBNAME, luaopen_coroutine}};
  for (const auto& lib : libs) {
    luaL_requiref(L, lib.name, lib.func, 1);
    lua_pop(L, 1);
  }
  for (const char* gone : {"dofile", "loadfile", "load", "require", "print"}) {
    lua_pushnil(L);
    lua_setglobal(L, gone);
  }
  lua_getglobal(L, LUA_STRLIBNAME);
  lua_pushnil(L);
  lua_setfield(L, -2, "dump");
  lua_pop(L, 1);
  for (const auto& c : kConstants) {
    lua_pushinteger(L, c.value);
    lua_setglobal(L, c.name);
  }
  const luaL_Reg verbs[] = {{"drop", &State::drop},   {"allow", &State::allow},
                            {"limit", &State::limit}, {"flow", &State::flow},
                            {"remove_flows", &State::removeFlows}, {"now", &State::now},
                            {"after", &State::after}, {"every", &State::every},
                            {"cancel", &State::cancel}, {"ip_str", &State::ipStr}};
  for (const auto& v : verbs) {
    lua_pushcfunction(L, v.func);
    lua_setglobal(L, v.name);
  }
  lua_createtable(L, 0, static_cast<int>(settings.size()));
  for (const auto& set : settings) {
    std::visit([L](const auto& v) {
      using T = std::decay_t<decltype(v)>;
      if constexpr (std::is_same_v<T, std::int64_t>) lua_pushinteger(L, v);
      else if constexpr (std::is_same_v<T, double>) lua_pushnumber(L, v);
      else if constexpr (std::is_same_v<T, bool>) lua_pushboolean(L, v ? 1 : 0);
      else lua_pushlstring(L, v.data(), v.size());
    }, set.value);
    lua_setfield(L, -2, set.key.c_str());
  }
  lua_setglobal(L, "config");
  lua_pushcfunction(L, &State::log);
  lua_setglobal(L, "log");
  lua_pushcfunction(L, &State::log);
  lua_setglobal(L, "print");
  lua_pushcfunction(L, &State::count);
  lua_setglobal(L, "count");
  lua_newuserdatauv(L, 0, 0);
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, &State::packetField);
  lua_setfield(L, -2, "__index");
  lua_pushliteral(L, "packet");
  lua_setfield(L, -2, "__name");
  lua_setmetatable(L, -2);
  st.pkt = luaL_ref(L, LUA_REGISTRYINDEX);

  lua_createtable(L, kPacketGlobalCount, 0);
  st.assigned_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushglobaltable(L);
  lua_createtable(L, 0, 3);
  lua_pushcfunction(L, &State::packetGlobal);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, &State::setGlobal);
  lua_setfield(L, -2, "__newindex");
  // setmetatable(_G, ...) would take the packet's globals away (or make them stick).
  lua_pushliteral(L, "the global table's metatable is cellwall's");
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, -2);
  lua_pop(L, 1);

  wrapSandboxed(L);
  st.watched = watchdog::start();
  if (!st.watched) lua_sethook(L, &State::hook, LUA_MASKCOUNT, kHookEvery);
  // What the chunk and run() ask for while loading (a drop{} at the top level) is kept for the
  // host: takeLoadEffects().
  st.effects = &s->load_effects_;
  const std::string chunk = "=" + s->name_;
  if (luaL_loadbufferx(L, text.data(), text.size(), chunk.c_str(), "t") != LUA_OK) {
    std::string why = lua_tostring(L, -1);
    return fail(why);
  }
  st.enter();
  const int loaded = lua_pcall(L, 0, 0, 0);
  st.leave();
  if (loaded != LUA_OK) {
    std::string why = st.over ? st.over_why : lua_tostring(L, -1);
    return fail(s->name_ + ": " + why);
  }
  // Its filter_* functions, in name order.
  lua_pushglobaltable(L);
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) {
    if (lua_type(L, -2) == LUA_TSTRING && lua_isfunction(L, -1)) {
      std::string key = lua_tostring(L, -2);
      if (key.rfind("filter_", 0) == 0) s->filters_.push_back(key);
      if (key.rfind("inspect_", 0) == 0) s->inspectors_.push_back(key);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  std::sort(s->filters_.begin(), s->filters_.end());
  for (const auto& f : s->filters_) {
    lua_getglobal(L, f.c_str());
    st.refs.push_back(luaL_ref(L, LUA_REGISTRYINDEX));
  }
  std::sort(s->inspectors_.begin(), s->inspectors_.end());
  for (const auto& f : s->inspectors_) {
    lua_getglobal(L, f.c_str());
    st.inspect_fns.push_back(packetFn(L));
  }
  if (lua_getglobal(L, "on_packet") == LUA_TFUNCTION) {
    st.on_packet = packetFn(L);
  } else {
    lua_pop(L, 1);
  }
  if (lua_getglobal(L, "run") == LUA_TFUNCTION) {
    // Started now: it runs to its first coroutine.yield(), where it waits for a packet.
    st.co = lua_newthread(L);
    st.co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_xmove(L, st.co, 1);
    int nres = 0;
    st.enter();
    st.running = st.co;
    const int r = lua_resume(st.co, L, 0, &nres);
    st.leave();
    if (r != LUA_YIELD) {
      std::string why = st.over ? st.over_why
                        : r == LUA_OK ? "run() returned before its first coroutine.yield()"
                                      : (lua_isstring(st.co, -1) ? lua_tostring(st.co, -1) : "error");
      return fail(s->name_ + ": run: " + why);
    }
    lua_pop(st.co, nres);
  } else {
    lua_pop(L, 1);
  }
  st.effects = nullptr;
  return s;
}

Script::~Script() = default;

Effects Script::takeLoadEffects() { return std::exchange(load_effects_, Effects{}); }

std::int64_t Script::nextTimer() const {
  std::int64_t next = -1;
  if (disabled()) return next;
  for (const auto& t : state_->timers)
    if (next < 0 || t.due_ms < next) next = t.due_ms;
  return next;
}

int Script::runTimers(std::int64_t now_ms, Effects& out) {
  State& st = *state_;
  int ran = 0;
  // Those due now, earliest first; one that a callback adds runs on a later call.
  std::vector<State::Timer> due;
  for (const auto& t : st.timers)
    if (t.due_ms <= now_ms) due.push_back(t);
  std::sort(due.begin(), due.end(), [](const auto& a, const auto& b) { return a.due_ms < b.due_ms; });
  lua_State* L = st.L;
  for (const auto& t : due) {
    if (disabled()) break;
    auto it = std::find_if(st.timers.begin(), st.timers.end(), [&t](const auto& x) { return x.id == t.id; });
    if (it == st.timers.end()) continue;  // an earlier callback cancelled it
    if (it->period_ms > 0) {
      // Next due a period after this one, but never in a burst to catch up.
      it->due_ms = std::max(it->due_ms + it->period_ms, now_ms + 1);
    } else {
      st.timers.erase(it);
    }
    ++calls_;
    ++ran;
    st.effects = &out;
    st.call_ms = now_ms;
    const int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, t.fn);
    if (t.period_ms == 0) luaL_unref(L, LUA_REGISTRYINDEX, t.fn);
    std::string failed;
    st.enter();
    const int r = lua_pcall(L, 0, 0, 0);
    st.leave();
    if (r != LUA_OK)
      failed = "timer: " + (st.over ? st.over_why : (lua_isstring(L, -1) ? std::string(lua_tostring(L, -1)) : std::string("error")));
    lua_settop(L, top);
    st.effects = nullptr;
    st.call_ms = 0;
    if (!failed.empty()) {
      st.rearm();
      st.over = false;
      disable(std::move(failed));
    }
  }
  return ran;
}

std::size_t Script::memoryUsed() const { return state_->used; }

void Script::disable(std::string why) { why_disabled_ = std::move(why); }

namespace {

Verdict verdictOf(lua_State* L, int index) {
  if (lua_type(L, index) != LUA_TSTRING) return Verdict::kContinue;
  const std::string_view v = lua_tostring(L, index);
  if (v == "allow") return Verdict::kAllow;
  if (v == "drop") return Verdict::kDrop;
  if (v == "reject") return Verdict::kReject;
  return Verdict::kContinue;
}

// on_packet's and inspect_*'s arguments: pkt, then the fields most scripts read: proto,
// tcp_flags, ip_src, ip_dst (as numbers), port_src, port_dst, cell, inbound (a boolean: the
// packet goes towards the cell). A function that declares only pkt ignores the rest; one that
// names them reads them without a field lookup each.
// Only the first n are pushed: as many as the function declares (all if it takes `...`).
int pushArgs(lua_State* L, int pkt_ref, const Packet& p, int n) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, pkt_ref);
  const lua_Integer ints[] = {p.proto, p.tcp_flags, p.ip_src, p.ip_dst, p.port_src, p.port_dst, p.cell};
  const int k = std::clamp(n, 1, kPacketArgs);
  for (int i = 1; i < k && i <= 7; ++i) lua_pushinteger(L, ints[i - 1]);
  if (k == kPacketArgs) lua_pushboolean(L, p.direction == "in" ? 1 : 0);
  return k;
}

std::string errorText(lua_State* L) { return lua_isstring(L, -1) ? lua_tostring(L, -1) : "error"; }

}  // namespace

void Script::beginCall(const Packet& p, Effects& out) {
  State& st = *state_;
  ++calls_;
  st.effects = &out;
  st.packet = &p;
  st.call_ms = p.now_ms;
  st.dropped_this = false;
  st.enter();
}

Verdict Script::endCall(Verdict verdict, std::string failed) {
  State& st = *state_;
  st.leave();
  if (verdict == Verdict::kContinue && st.dropped_this) verdict = Verdict::kDrop;
  st.effects = nullptr;
  st.packet = nullptr;
  st.call_ms = 0;
  if (!failed.empty()) {
    st.rearm();
    disable(std::move(failed));
    return Verdict::kContinue;  // what it asked for before it failed (out) still stands; no verdict
  }
  return verdict;
}

Verdict Script::onPacket(const Packet& p, Effects& out) {
  if (disabled()) return Verdict::kContinue;
  State& st = *state_;
  lua_State* L = st.L;
  beginCall(p, out);
  Verdict verdict = Verdict::kContinue;
  const int top = lua_gettop(L);
  std::string failed;  // which part failed, and why

  if (st.on_packet.ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, st.on_packet.ref);
    const int nargs = pushArgs(L, st.pkt, p, st.on_packet.nargs);
    if (lua_pcall(L, nargs, 1, 0) != LUA_OK) failed = "on_packet: " + (st.over ? st.over_why : errorText(L));
    else verdict = verdictOf(L, -1);
    lua_settop(L, top);
  }
  if (failed.empty() && verdict == Verdict::kContinue && st.co != nullptr) {
    lua_rawgeti(st.co, LUA_REGISTRYINDEX, st.pkt);
    int nres = 0;
    st.running = st.co;
    const int r = lua_resume(st.co, L, 1, &nres);
    st.running = L;
    if (r == LUA_YIELD || r == LUA_OK) {
      if (nres > 0) verdict = verdictOf(st.co, -nres);
      lua_pop(st.co, nres);
      if (r == LUA_OK) {  // run() returned: it has no more packets to see
        luaL_unref(L, LUA_REGISTRYINDEX, st.co_ref);
        st.co = nullptr;
        st.co_ref = LUA_NOREF;
      }
    } else {
      failed = "run: " + (st.over ? st.over_why : errorText(st.co));
    }
  }
  for (std::size_t i = 0; failed.empty() && i < st.refs.size() && verdict == Verdict::kContinue; ++i) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, st.refs[i]);
    lua_pushlstring(L, p.frame.data(), p.frame.size());
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) failed = filters_[i] + ": " + (st.over ? st.over_why : errorText(L));
    else verdict = verdictOf(L, -1);
    lua_settop(L, top);
    if (failed.empty() && verdict == Verdict::kContinue && st.dropped_this) verdict = Verdict::kDrop;
  }
  return endCall(verdict, std::move(failed));
}

Verdict Script::onInspect(const Packet& p, Effects& out) {
  if (disabled() || inspectors_.empty()) return Verdict::kContinue;
  State& st = *state_;
  lua_State* L = st.L;
  beginCall(p, out);
  Verdict verdict = Verdict::kContinue;
  const int top = lua_gettop(L);
  std::string failed;
  for (std::size_t i = 0; i < st.inspect_fns.size() && verdict == Verdict::kContinue; ++i) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, st.inspect_fns[i].ref);
    const int nargs = pushArgs(L, st.pkt, p, st.inspect_fns[i].nargs);
    if (lua_pcall(L, nargs, 1, 0) != LUA_OK) {
      failed = inspectors_[i] + ": " + (st.over ? st.over_why : errorText(L));
      break;
    }
    verdict = verdictOf(L, -1);
    lua_settop(L, top);
  }
  lua_settop(L, top);
  return endCall(verdict, std::move(failed));
}

}  // namespace cw::script
