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

  ~State() {
    if (L != nullptr) lua_close(L);
  }

  void stopEverything(const char* why) {
    if (!over) over_why = why;
    over = true;
    lua_sethook(L, &State::hook, LUA_MASKCOUNT, 1);
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
    if (!st->over && st->steps > st->limits.instructions_per_call) st->stopEverything("instruction budget exceeded");
    if (st->over) luaL_error(L, "%s", st->over_why.c_str());
  }

  // The packet's globals (ip_src, ip_dst, port_src, port_dst) are not stored: _G's __index
  // answers them from the packet being handled, so a call costs nothing for those it does not
  // read (formatting two addresses for every packet was half the cost of an empty filter).
  static int packetGlobal(lua_State* L) {
    State* st = of(L);
    const Packet* p = st->packet;
    std::size_t len = 0;
    const char* key = lua_tolstring(L, 2, &len);
    if (p == nullptr || key == nullptr) return 0;
    const std::string_view k(key, len);
    if (k == "ip_src") lua_pushstring(L, dotted(p->ip_src).c_str());
    else if (k == "ip_dst") lua_pushstring(L, dotted(p->ip_dst).c_str());
    else if (k == "port_src") lua_pushinteger(L, p->port_src);
    else if (k == "port_dst") lua_pushinteger(L, p->port_dst);
    else return 0;
    return 1;
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
  return s;
}

Script::~Script() = default;

std::size_t Script::memoryUsed() const { return state_->used; }

void Script::disable(std::string why) { why_disabled_ = std::move(why); }

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
  for (std::size_t i = 0; i < st.refs.size() && verdict == Verdict::kContinue; ++i) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, st.refs[i]);
    lua_pushlstring(L, p.frame.data(), p.frame.size());
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
      std::string why = st.over ? st.over_why : (lua_isstring(L, -1) ? lua_tostring(L, -1) : "error");
      lua_settop(L, top);
      lua_sethook(L, &State::hook, LUA_MASKCOUNT, kHookEvery);
      st.effects = nullptr;
      st.packet = nullptr;
      disable(filters_[i] + ": " + why);
      return Verdict::kContinue;  // its effects of this call still stand (out); the verdict does not
    }
    if (lua_type(L, -1) == LUA_TSTRING) {
      std::string_view v = lua_tostring(L, -1);
      if (v == "allow") verdict = Verdict::kAllow;
      else if (v == "drop") verdict = Verdict::kDrop;
      else if (v == "reject") verdict = Verdict::kReject;
    }
    lua_settop(L, top);
    if (verdict == Verdict::kContinue && st.dropped_this) verdict = Verdict::kDrop;
  }
  st.effects = nullptr;
  st.packet = nullptr;
  return verdict;
}

}  // namespace cw::script
