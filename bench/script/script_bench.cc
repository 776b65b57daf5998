// What one loaded script costs per Packet-In (issue 5's target: <= 150 ns for one script):
// Script::onPacket on a 74-byte TCP SYN frame with
//  - an empty filter (the floor: globals set, the frame pushed, one protected call),
//  - the seed-style telnet filter (slices and unpacks the frame by hand),
//  - the shipped port-scan guard on a connection to a target its source has opened before (its
//    common case),
//  - a bare C++ -> Lua call with scalar arguments, for comparison (the issue's ~90 ns).
// Run: build/release/bench/script/cw-script-bench
#include <benchmark/benchmark.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <fstream>
#include <sstream>
#include <string>

#include "common/net.h"
#include "script/engine.h"

namespace {

using cw::script::Effects;
using cw::script::Packet;
using cw::script::Script;

std::string synFrame() {
  std::string f(74, '\0');
  f[12] = 0x08;
  f[14] = 0x45;
  f[14 + 9] = 6;
  f[36] = 0;
  f[37] = 80;
  return f;
}

void runScript(benchmark::State& state, const std::string& text, std::uint8_t tcp_flags = 0) {
  auto s = Script::load("bench.lua", text);
  if (!s) {
    state.SkipWithError(s.error().message.c_str());
    return;
  }
  const std::string frame = synFrame();
  Packet p;
  p.frame = frame;
  p.ip_src = cw::Ip4::parse("10.200.0.2")->v;
  p.ip_dst = cw::Ip4::parse("10.250.0.1")->v;
  p.port_src = 40000;
  p.port_dst = 80;
  p.proto = 6;
  p.tcp_flags = tcp_flags;
  p.cell = 1;
  p.direction = "out";
  Effects e;
  for (auto _ : state) {
    benchmark::DoNotOptimize((*s)->onPacket(p, e));
    e.flows.clear();
  }
  if ((*s)->disabled()) state.SkipWithError((*s)->whyDisabled().c_str());
}

void BM_EmptyFilter(benchmark::State& state) { runScript(state, "function filter_empty(frame) end"); }
BENCHMARK(BM_EmptyFilter);

// The issue's shape: an on_packet that reads one field and lets the packet go on.
void BM_OnPacketOneField(benchmark::State& state) {
  runScript(state, "function on_packet(pkt) if pkt.port_dst == 23 then return 'drop' end end");
}
BENCHMARK(BM_OnPacketOneField);

void BM_OnPacketEmpty(benchmark::State& state) { runScript(state, "function on_packet(pkt) end"); }
BENCHMARK(BM_OnPacketEmpty);

void BM_SeedTelnetFilter(benchmark::State& state) {
  runScript(state, R"(
function filter_telnet(frame)
  local ip = string.sub(frame, ETH_HEADER_LEN + 1)
  local proto = string.unpack("B", ip, 10)
  if proto ~= TCP then return end
  local tcp = string.sub(ip, IP_HEADER_LEN + 1)
  if string.unpack(">H", tcp, 3) == TELNET then drop(ip_src, port_dst) end
end)");
}
BENCHMARK(BM_SeedTelnetFilter);

void BM_PortScanGuard(benchmark::State& state) {
  std::ifstream in(CW_SHIPPED_SCRIPTS_DIR "/portscan_guard.lua");
  std::ostringstream text;
  text << in.rdbuf();
  runScript(state, text.str(), 0x02);  // a SYN; the first call makes the target known
}
BENCHMARK(BM_PortScanGuard);

void BM_BareLuaCallScalars(benchmark::State& state) {
  lua_State* L = luaL_newstate();
  luaL_dostring(L, "function f(a, b, c, d) return a end");
  lua_getglobal(L, "f");
  const int ref = luaL_ref(L, LUA_REGISTRYINDEX);
  for (auto _ : state) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    lua_pushinteger(L, 1);
    lua_pushinteger(L, 2);
    lua_pushinteger(L, 3);
    lua_pushinteger(L, 4);
    lua_pcall(L, 4, 1, 0);
    benchmark::DoNotOptimize(lua_tointeger(L, -1));
    lua_pop(L, 1);
  }
  lua_close(L);
}
BENCHMARK(BM_BareLuaCallScalars);

}  // namespace

BENCHMARK_MAIN();
