// The daemon's side of scripts: what ScriptHost puts on the bridge for what scripts ask, how a
// reload and an unload clean up, the configuration's [script.NAME] tables, and ScriptAdmin's
// files (load, unload, a configured script that is missing).
#include "daemon/scripts.h"

#include <gtest/gtest.h>

#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "daemon/config.h"
#include "daemon/script_admin.h"
#include "decide/pipeline.h"
#include "packet/builder.h"

namespace cw::daemon {
namespace {

struct Sent {
  std::vector<ofp::MeterMod> meters;
  std::vector<ofp::FlowMod> flows;
};

// A view with one cell (id 7, port 3, 10.200.0.9).
std::shared_ptr<const decide::NetView> oneCell() {
  auto v = std::make_shared<decide::NetView>();
  v->generation = 1;
  auto& sv = v->switches[1];
  sv.dpid = 1;
  decide::CellPort c{7, "app", "default", 3, *MacAddr::parse("02:00:00:00:00:09"), *Ip4::parse("10.200.0.9"), nullptr,
                     nullptr};
  sv.cell_port_by_ip[c.ip.v] = 3;
  sv.cells_by_port[3] = c;
  return v;
}

struct Host {
  decide::ViewHolder views;
  std::vector<Sent> sent;
  std::vector<std::string> disabled, logs;
  std::unique_ptr<ScriptHost> host;
  Host() {
    views.publish(oneCell());
    ScriptHost::Hooks h;
    h.send = [this](std::vector<ofp::MeterMod> m, std::vector<ofp::FlowMod> f) { sent.push_back({m, f}); };
    h.disabled = [this](const std::string& n, const std::string& why) { disabled.push_back(n + ": " + why); };
    h.log = [this](const std::string& n, const std::string& line) { logs.push_back(n + ": " + line); };
    host = std::make_unique<ScriptHost>(views, h);
  }
  Expected<void> load(const std::string& name, std::string text) {
    ScriptHost::Spec s;
    s.name = name;
    s.origin = "user";
    return host->load(s, &text);
  }
};

TEST(ScriptHost, FlowsGoToTheScriptTableWithTheScriptsCookie) {
  Host h;
  // At load (the top level): a seed drop without a protocol, a cell's limit, one for no cell.
  ASSERT_TRUE(h.load("a", "drop('192.0.2.1', 23)\nlimit{cell = 7, kbps = 500}\ndrop{cell = 99}\n"));
  ASSERT_EQ(h.sent.size(), 1u);
  const Sent& s = h.sent[0];
  ASSERT_EQ(s.meters.size(), 1u);
  EXPECT_GE(s.meters[0].meter_id, kScriptMeterBase);
  EXPECT_EQ(s.meters[0].bands.at(0).rate, 500u);
  EXPECT_TRUE(s.meters[0].flags & ofp::kMeterKbps);
  ASSERT_EQ(s.flows.size(), 3u);  // TCP and UDP for the port, then the limit; not cell 99
  for (const auto& f : s.flows) {
    EXPECT_EQ(f.table_id, decide::kTableScript);
    EXPECT_EQ(decide::cookieKind(f.cookie), decide::CookieKind::kScript);
  }
  EXPECT_EQ(s.flows[0].priority, decide::kPrioScriptBase + 100);
  EXPECT_EQ(s.flows[0].match.ip_proto, 6);
  EXPECT_EQ(s.flows[0].match.tcp_dst, 23);
  EXPECT_EQ(s.flows[1].match.ip_proto, 17);
  EXPECT_TRUE(s.flows[0].instructions.empty());  // drop
  // The cell's limit: its port and its address, through the meter, then the connections.
  EXPECT_EQ(s.flows[2].match.in_port, 3u);
  EXPECT_EQ(s.flows[2].match.ipv4_src, *Ip4::parse("10.200.0.9"));
  ASSERT_EQ(s.flows[2].instructions.size(), 2u);
  EXPECT_EQ(std::get<ofp::InstrMeter>(s.flows[2].instructions[0]).meter_id, s.meters[0].meter_id);
  EXPECT_EQ(std::get<ofp::InstrGotoTable>(s.flows[2].instructions[1]).table_id, decide::kTableConn);
  ASSERT_EQ(h.logs.size(), 1u);
  EXPECT_NE(h.logs[0].find("no such cell"), std::string::npos);
  const std::uint32_t id = decide::cookieCell(s.flows[0].cookie);
  EXPECT_TRUE(h.host->ownsFlowsOf(id));

  // Reloaded: the old version's flows and meter go, by its id; the new one has another id.
  ASSERT_TRUE(h.load("a", "drop{ip_src = '198.51.100.0/24', proto = 'udp'}\n"));
  ASSERT_EQ(h.sent.size(), 2u);
  const Sent& r = h.sent[1];
  ASSERT_EQ(r.meters.size(), 1u);
  EXPECT_EQ(r.meters[0].command, ofp::MeterModCommand::kDelete);
  ASSERT_EQ(r.flows.size(), 2u);
  EXPECT_EQ(r.flows[0].command, ofp::FlowModCommand::kDelete);
  EXPECT_EQ(r.flows[0].cookie_mask, decide::kCookieKindMask | decide::kCookieCellMask);
  EXPECT_EQ(decide::cookieCell(r.flows[0].cookie), id);
  EXPECT_EQ(r.flows[1].match.ipv4_src_mask, *Ip4::parse("255.255.255.0"));
  EXPECT_FALSE(h.host->ownsFlowsOf(id));

  // Unloaded: its flows go; an unknown name is an error.
  ASSERT_TRUE(h.host->unload("a"));
  EXPECT_EQ(h.sent.back().flows.at(0).command, ofp::FlowModCommand::kDelete);
  EXPECT_FALSE(h.host->unload("a"));
  EXPECT_FALSE(h.host->any());
}

TEST(ScriptHost, JudgeRunsScriptsInOrderAndReportsOneThatStops) {
  Host h;
  ASSERT_TRUE(h.load("first", "function on_packet(pkt) count('seen') end"));
  ASSERT_TRUE(h.load("second", "function on_packet(pkt, proto, f, s, d, sp, dp) if dp == 23 then return 'reject' end end"));
  ASSERT_TRUE(h.load("broken", "function on_packet(pkt) error('boom') end"));
  auto view = h.views.current();
  const auto& sv = view->switches.at(1);
  const auto& cell = sv.cells_by_port.at(3);
  auto build = [](std::uint16_t dport) {
    return packet::buildTcp4({*MacAddr::parse("02:00:00:00:00:09"), *MacAddr::parse("02:d1:00:00:00:01"), 0},
                             *Ip4::parse("10.200.0.9"), *Ip4::parse("192.0.2.1"), 40000, dport, packet::kTcpSyn);
  };
  auto frame = build(23);
  auto f = packet::parseFrame(frame);
  ASSERT_TRUE(f);
  decide::Decision::ScriptRequests out;
  auto v = h.host->judge(sv, cell, 3, *f, false, {1, 1}, out);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->script, "second");
  EXPECT_EQ(v->action, policy::Action::kReject);
  auto frame80 = build(80);
  auto g = packet::parseFrame(frame80);
  auto none = h.host->judge(sv, cell, 3, *g, false, {1, 1}, out);
  EXPECT_FALSE(none);  // "broken" failed: disabled, reported once, no verdict
  ASSERT_EQ(h.disabled.size(), 1u);
  EXPECT_NE(h.disabled[0].find("broken: on_packet: "), std::string::npos);
  EXPECT_NE(h.disabled[0].find("boom"), std::string::npos);
  auto list = h.host->list();
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0].counters, (std::vector<std::pair<std::string, std::int64_t>>{{"seen", 2}}));
  EXPECT_EQ(list[1].rejected, 1u);
  EXPECT_EQ(list[2].state, "disabled");
}

// A directory of its own, removed however the test ends.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char tmpl[] = "/tmp/cw-scripts-test-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

TEST(ScriptConfig, ScriptTablesAndInspectApps) {
  TempDir tmp;
  const auto& dir = tmp.path;
  auto file = dir / "cellwalld.toml";
  std::ofstream(file) << "inspect_apps = [\"watched\"]\nscripts_dir = \"/opt/lua\"\n"
                         "[script.portscan_guard]\nports = 20\nwindow = 2.5\nverbose = true\nnote = \"x\"\n"
                         "mode = \"helper\"\n";
  Config cfg;
  ASSERT_TRUE(loadConfigFile(file, cfg));
  EXPECT_EQ(cfg.inspect_apps, std::vector<std::string>{"watched"});
  EXPECT_EQ(cfg.scripts_dir, "/opt/lua");
  ASSERT_EQ(cfg.scripts.size(), 1u);
  EXPECT_TRUE(cfg.scripts[0].helper);
  ASSERT_EQ(cfg.scripts[0].settings.size(), 4u);  // mode is cellwalld's, not the script's
  for (const auto& set : cfg.scripts[0].settings) {
    if (set.key == "ports") EXPECT_EQ(std::get<std::int64_t>(set.value), 20);
    else if (set.key == "window") EXPECT_EQ(std::get<double>(set.value), 2.5);
    else if (set.key == "verbose") EXPECT_TRUE(std::get<bool>(set.value));
    else if (set.key == "note") EXPECT_EQ(std::get<std::string>(set.value), "x");
    else ADD_FAILURE() << set.key;
  }
  std::ofstream(file) << "[script.x]\nmode = \"fast\"\n";
  Config bad;
  auto r = loadConfigFile(file, bad);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("mode is"), std::string::npos);
  std::ofstream(file) << "[script.x]\nlist = [1, 2]\n";
  EXPECT_FALSE(loadConfigFile(file, bad));
}

TEST(ScriptAdmin, UserScriptsAreFilesAndAMissingConfiguredScriptStopsTheStart) {
  TempDir tmp;
  const auto& dir = tmp.path;
  Config cfg;
  cfg.state_dir = dir;
  cfg.scripts_dir = dir / "shipped";
  std::filesystem::create_directories(cfg.scripts_dir);
  std::ofstream(cfg.scripts_dir / "guard.lua") << "function on_packet(pkt) end\n";
  cfg.scripts.push_back({"guard", false, {}});
  std::filesystem::create_directories(dir / "scripts");
  std::ofstream(dir / "scripts" / "mine.lua") << "function on_packet(pkt) end\n";
  asio::io_context io;
  Host h;
  {
    ScriptAdmin admin(*h.host, cfg, io);
    ASSERT_TRUE(admin.start());
    auto l = admin.list();
    ASSERT_EQ(l.scripts.size(), 2u);
    EXPECT_EQ(l.scripts[0].name, "guard");
    EXPECT_EQ(l.scripts[0].origin, "shipped");
    EXPECT_EQ(l.scripts[1].origin, "user");
    // load: kept as a file; a bad name, a shipped name and a script that does not load are refused.
    EXPECT_TRUE(admin.load({"extra", "function on_packet(pkt) end", "x.lua", false}).ok);
    EXPECT_TRUE(std::filesystem::exists(dir / "scripts" / "extra.lua"));
    EXPECT_FALSE(admin.load({"Bad Name", "", "x.lua", false}).ok);
    EXPECT_FALSE(admin.load({"guard", "", "x.lua", false}).ok);
    auto broken = admin.load({"extra", "function (", "x.lua", false});
    EXPECT_FALSE(broken.ok);
    std::ifstream kept(dir / "scripts" / "extra.lua");
    std::string text((std::istreambuf_iterator<char>(kept)), std::istreambuf_iterator<char>());
    EXPECT_EQ(text, "function on_packet(pkt) end");  // the running version's file is untouched
    // unload: a user script's file goes; a shipped one stays on disk.
    EXPECT_TRUE(admin.unload({"extra"}).ok);
    EXPECT_FALSE(std::filesystem::exists(dir / "scripts" / "extra.lua"));
    EXPECT_TRUE(admin.unload({"guard"}).ok);
    EXPECT_TRUE(std::filesystem::exists(cfg.scripts_dir / "guard.lua"));
    admin.stop();
    // The cancelled timer and inotify read complete here, as in cellwalld's loop, rather than
    // being destroyed with the io_context.
    io.restart();
    io.poll();
  }
  cfg.scripts.push_back({"missing", false, {}});
  Host h2;
  ScriptAdmin admin2(*h2.host, cfg, io);
  auto r = admin2.start();
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("[script.missing]: no such script"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace cw::daemon
