#include "script/engine.h"

// Not lua.hpp: its extern "C" would not match the C++ build's symbols.
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "common/net.h"

namespace cw::script {

namespace {

constexpr int kHookEvery = 1000;  // instructions between budget checks

// The seed design's constants.
struct Constant {
  const char* name;
  lua_Integer value;
};
constexpr Constant kConstants[] = {
    {"ETH_HEADER_LEN", 14}, {"IP_HEADER_LEN", 20}, {"TCP_HEADER_LEN", 20}, {"UDP_HEADER_LEN", 8},
    {"ICMP", 1},           {"TCP", 6},            {"UDP", 17},            {"FTP", 21},
    {"SSH", 22},           {"TELNET", 23},        {"SMTP", 25},           {"DNS", 53},
    {"HTTP", 80},          {"HTTPS", 443},
};

std::string dotted(std::uint32_t v) { return Ip4{v}.str(); }

}  // namespace

const char* verdictName(Verdict v) {
  switch (v) {
    case Verdict::kContinue: return "continue";
    case Verdict::kAllow: return "allow";
    case Verdict::kDrop: return "drop";
    case Verdict::kReject: return "reject";
  }
  return "?";
}

struct Script::State {
  lua_State* L = nullptr;
  Limits limits;
  std::size_t used = 0;
  std::uint64_t steps = 0;
  bool over = false;  // the budget or the memory ran out: every instruction raises until the call ends
  std::string over_why;
  Effects* effects = nullptr;
  const Packet* packet = nullptr;
  bool dropped_this = false;
  std::vector<int> refs;  // the filter functions, in name order
  int on_packet = LUA_NOREF;  // on_packet(pkt)
  int pkt = LUA_NOREF;        // the one packet userdata, reused: its fields are read on demand
  lua_State* co = nullptr;    // run(), as a coroutine waiting in coroutine.yield()
  int co_ref = LUA_NOREF;

  ~State() {
    if (L != nullptr) lua_close(L);
  }

  void stopEverything(const char* why, lua_State* running = nullptr) {
    if (!over) over_why = why;
    over = true;
    for (lua_State* t : {L, co, running})
      if (t != nullptr) lua_sethook(t, &State::hook, LUA_MASKCOUNT, 1);
  }

  void rearm() {
    for (lua_State* t : {L, co})
      if (t != nullptr) lua_sethook(t, &State::hook, LUA_MASKCOUNT, kHookEvery);
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
  static bool pushField(lua_State* L, std::string_view k, bool seed_only) {
    const Packet* p = of(L)->packet;
    if (p == nullptr) return false;
    if (k == "port_dst") lua_pushinteger(L, p->port_dst);
    else if (k == "port_src") lua_pushinteger(L, p->port_src);
    else if (k == "ip_src") lua_pushstring(L, dotted(p->ip_src).c_str());
    else if (k == "ip_dst") lua_pushstring(L, dotted(p->ip_dst).c_str());
    else if (seed_only) return false;
    else if (k == "frame") lua_pushlstring(L, p->frame.data(), p->frame.size());
    else if (k == "proto") lua_pushinteger(L, p->proto);
    else if (k == "tcp_flags") lua_pushinteger(L, p->tcp_flags);
    else if (k == "cell") lua_pushinteger(L, p->cell);
    else if (k == "in_port") lua_pushinteger(L, p->in_port);
    else if (k == "app") lua_pushlstring(L, p->app.data(), p->app.size());
    else if (k == "names") lua_pushlstring(L, p->names.data(), p->names.size());
    else if (k == "process") lua_pushlstring(L, p->process.data(), p->process.size());
    else return false;
    return true;
  }

  static std::string_view keyOf(lua_State* L) {
    std::size_t len = 0;
    const char* key = lua_tolstring(L, 2, &len);
    return key != nullptr ? std::string_view(key, len) : std::string_view();
  }

  // The packet's globals (ip_src, ip_dst, port_src, port_dst) are not stored: _G's __index
  // answers them from the packet being handled, so a call costs nothing for those it does not
  // read (formatting two addresses for every packet was half the cost of an empty filter).
  static int packetGlobal(lua_State* L) { return pushField(L, keyOf(L), true) ? 1 : 0; }

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

  // drop(ip, port): this source's traffic to that port (0 or nil: any) is dropped from now on.
  static int drop(lua_State* L) {
    State* st = of(L);
    Effects::Drop d;
    if (lua_type(L, 1) == LUA_TSTRING) {
      auto ip = Ip4::parse(lua_tostring(L, 1));
      if (!ip) return luaL_error(L, "drop: '%s' is not an IPv4 address", lua_tostring(L, 1));
      d.ip_src = ip->v;
    } else {
      lua_Integer v = luaL_checkinteger(L, 1);
      if (v < 0 || v > 0xffffffffLL) return luaL_error(L, "drop: address out of range");
      d.ip_src = static_cast<std::uint32_t>(v);
    }
    lua_Integer port = luaL_optinteger(L, 2, 0);
    if (port < 0 || port > 65535) return luaL_error(L, "drop: port out of range");
    d.port_dst = static_cast<std::uint16_t>(port);
    if (st->effects != nullptr) {
      if (st->effects->drops.size() >= 64) return luaL_error(L, "drop: more than 64 in one call");
      st->effects->drops.push_back(d);
    }
    if (st->packet != nullptr && d.ip_src == st->packet->ip_src && (d.port_dst == 0 || d.port_dst == st->packet->port_dst))
      st->dropped_this = true;
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

Expected<std::unique_ptr<Script>> Script::load(std::string name, std::string_view text, Limits limits) {
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
  lua_pushcfunction(L, &State::drop);
  lua_setglobal(L, "drop");
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

  lua_pushglobaltable(L);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, &State::packetGlobal);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
  lua_pop(L, 1);

  lua_sethook(L, &State::hook, LUA_MASKCOUNT, kHookEvery);
  const std::string chunk = "=" + s->name_;
  if (luaL_loadbufferx(L, text.data(), text.size(), chunk.c_str(), "t") != LUA_OK) {
    std::string why = lua_tostring(L, -1);
    return fail(why);
  }
  st.steps = 0;
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
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
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  std::sort(s->filters_.begin(), s->filters_.end());
  for (const auto& f : s->filters_) {
    lua_getglobal(L, f.c_str());
    st.refs.push_back(luaL_ref(L, LUA_REGISTRYINDEX));
  }
  if (lua_getglobal(L, "on_packet") == LUA_TFUNCTION) {
    st.on_packet = luaL_ref(L, LUA_REGISTRYINDEX);
  } else {
    lua_pop(L, 1);
  }
  if (lua_getglobal(L, "run") == LUA_TFUNCTION) {
    // Started now: it runs to its first coroutine.yield(), where it waits for a packet.
    st.co = lua_newthread(L);
    st.co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_xmove(L, st.co, 1);
    st.steps = 0;
    int nres = 0;
    const int r = lua_resume(st.co, L, 0, &nres);
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
  return s;
}

Script::~Script() = default;

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

std::string errorText(lua_State* L) { return lua_isstring(L, -1) ? lua_tostring(L, -1) : "error"; }

}  // namespace

Verdict Script::onPacket(const Packet& p, Effects& out) {
  if (disabled()) return Verdict::kContinue;
  State& st = *state_;
  lua_State* L = st.L;
  ++calls_;
  st.effects = &out;
  st.packet = &p;
  st.dropped_this = false;
  st.steps = 0;
  Verdict verdict = Verdict::kContinue;
  const int top = lua_gettop(L);
  std::string failed;  // which part failed, and why

  if (st.on_packet != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, st.on_packet);
    lua_rawgeti(L, LUA_REGISTRYINDEX, st.pkt);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) failed = "on_packet: " + (st.over ? st.over_why : errorText(L));
    else verdict = verdictOf(L, -1);
    lua_settop(L, top);
  }
  if (failed.empty() && verdict == Verdict::kContinue && st.co != nullptr) {
    lua_rawgeti(st.co, LUA_REGISTRYINDEX, st.pkt);
    int nres = 0;
    const int r = lua_resume(st.co, L, 1, &nres);
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
  if (verdict == Verdict::kContinue && st.dropped_this) verdict = Verdict::kDrop;
  st.effects = nullptr;
  st.packet = nullptr;
  if (!failed.empty()) {
    st.rearm();
    disable(std::move(failed));
    return Verdict::kContinue;  // what it asked for before it failed (out) still stands; no verdict
  }
  return verdict;
}

}  // namespace cw::script
