#include "ovs/ovs.h"

#include <gtest/gtest.h>

#include <fstream>

#include "netdev/fake_runner.h"

namespace cw {
namespace {

namespace fs = std::filesystem;

class OvsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    state = fs::temp_directory_path() / ("cw-ovs-test-" + std::to_string(::getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(state);
    fs::create_directories(state);
    opts.state_dir = state;
    opts.controllers = {"unix:cw-br0.cellwalld"};  // as cellwalld sets it: relative to the rundir
    opts.datapath = "netdev";
  }
  void TearDown() override { fs::remove_all(state); }

  // Makes the fake see live daemons with pidfiles in the state dir, as after a successful
  // start (the real daemons write the pidfiles themselves).
  void daemonsRunning() {
    fs::create_directories(state / "ovs");
    std::ofstream(state / "ovs/ovsdb-server.pid") << "100\n";
    std::ofstream(state / "ovs/ovs-vswitchd.pid") << "101\n";
    runner.live_[100] = "ovsdb-server";
    runner.live_[101] = "ovs-vswitchd";
  }

  std::string db() const { return "--db=unix:" + (state / "ovs/db.sock").string() + " --timeout=10"; }

  fs::path state;
  OvsOptions opts;
  FakeRunner runner;
};

TEST_F(OvsTest, RefusesWithoutPrivileges) {
  runner.privileged_ = false;
  auto ovs = Ovs::open(opts, runner);
  ASSERT_FALSE(ovs);
  EXPECT_EQ(ovs.error().message,
            "cellwall needs root or CAP_NET_ADMIN+CAP_SYS_ADMIN to run Open vSwitch and create namespaces");
  EXPECT_TRUE(runner.log().empty());
}

TEST_F(OvsTest, ValidatesOptions) {
  auto bad = opts;
  bad.bridge = "br0";
  EXPECT_FALSE(Ovs::open(bad, runner));
  bad = opts;
  bad.controllers = {"tcp:1.2.3.4:6653 --evil"};
  EXPECT_FALSE(Ovs::open(bad, runner));
  bad = opts;
  bad.packet_in_rate_limit = 10;
  EXPECT_FALSE(Ovs::open(bad, runner));
  bad = opts;
  bad.datapath = "dpdk";
  EXPECT_FALSE(Ovs::open(bad, runner));
  EXPECT_TRUE(runner.log().empty());
}

TEST_F(OvsTest, StartsEmbeddedDaemons) {
  auto dir = (state / "ovs").string();
  // A stale pidfile whose process is gone: not adopted, just cleaned up.
  fs::create_directories(state / "ovs");
  std::ofstream(state / "ovs/ovsdb-server.pid") << "99\n";
  // The fake daemons "write" their pidfiles when started, as the real ones do.
  runner.on_run_ = [&](const Command& cmd) {
    if (cmd.argv[0] == "ovsdb-server" || cmd.argv[0] == "ovs-vswitchd") {
      pid_t pid = cmd.argv[0] == "ovsdb-server" ? 100 : 101;
      std::ofstream(state / "ovs" / (cmd.argv[0] + ".pid")) << pid << "\n";
      runner.live_[pid] = cmd.argv[0];
    }
  };
  auto ovs = Ovs::open(opts, runner);
  ASSERT_TRUE(ovs) << ovs.error().message;
  EXPECT_FALSE((*ovs)->adopted());
  EXPECT_TRUE((*ovs)->isEmbedded());
  EXPECT_EQ((*ovs)->dbTarget(), "unix:" + dir + "/db.sock");
  EXPECT_EQ((*ovs)->ofctlTarget(), "unix:" + dir + "/cw-br0.mgmt");
  const std::vector<std::string> expected = {
      "ovsdb-tool create " + dir + "/conf.db /usr/share/openvswitch/vswitch.ovsschema",
      "ovsdb-server " + dir + "/conf.db --remote=punix:" + dir + "/db.sock --pidfile=" + dir +
          "/ovsdb-server.pid --unixctl=" + dir + "/ovsdb-server.ctl --log-file=" + dir +
          "/ovsdb-server.log --detach --no-chdir -vsyslog:off",
      "ovs-appctl -t " + dir + "/ovsdb-server.ctl version",
      "ovs-vsctl " + db() + " --no-wait init -- set Open_vSwitch . other_config:userspace-tso-enable=true",
      "ovs-vswitchd unix:" + dir + "/db.sock --pidfile=" + dir + "/ovs-vswitchd.pid --unixctl=" + dir +
          "/ovs-vswitchd.ctl --log-file=" + dir + "/ovs-vswitchd.log --detach --no-chdir -vsyslog:off",
      "ovs-appctl -t " + dir + "/ovs-vswitchd.ctl version",
  };
  EXPECT_EQ(runner.log(), expected);
  // Daemons get a private rundir so the bridge's .mgmt socket lands in the state dir.
  bool has_rundir = false;
  for (const auto& [k, v] : runner.commands()[1].env) has_rundir = has_rundir || (k == "OVS_RUNDIR" && v == dir);
  EXPECT_TRUE(has_rundir);
}

TEST_F(OvsTest, AdoptsLiveDaemons) {
  daemonsRunning();
  auto ovs = Ovs::open(opts, runner);
  ASSERT_TRUE(ovs) << ovs.error().message;
  EXPECT_TRUE((*ovs)->adopted());
  EXPECT_EQ(runner.matching("ovsdb-server ").size(), 0u);
  EXPECT_EQ(runner.matching("terminate").size(), 0u);
  EXPECT_EQ(runner.matching("ovs-appctl").size(), 2u);
}

// The fake daemons "write" their pidfiles when started, as the real ones do, with new pids.
void restartablePidfiles(FakeRunner& runner, const fs::path& state) {
  runner.on_run_ = [&runner, state](const Command& cmd) {
    if (cmd.argv[0] != "ovsdb-server" && cmd.argv[0] != "ovs-vswitchd") return;
    pid_t pid = runner.next_pid_++;
    std::ofstream(state / "ovs" / (cmd.argv[0] + ".pid")) << pid << "\n";
    runner.live_[pid] = cmd.argv[0];
  };
}

TEST_F(OvsTest, SupervisionRestartsADeadSwitchDaemonFromTheSameDatabase) {
  daemonsRunning();
  auto ovs = Ovs::open(opts, runner);
  ASSERT_TRUE(ovs);
  restartablePidfiles(runner, state);
  const auto t0 = std::chrono::steady_clock::now();
  auto quiet = (*ovs)->supervise(t0);
  EXPECT_FALSE(quiet.restarted);
  EXPECT_TRUE(quiet.warnings.empty() && quiet.errors.empty() && quiet.info.empty());

  runner.clear();
  runner.live_.erase(101);  // kill -9 ovs-vswitchd
  auto sup = (*ovs)->supervise(t0 + std::chrono::milliseconds(250));
  EXPECT_TRUE(sup.restarted);
  ASSERT_EQ(sup.warnings.size(), 1u);
  EXPECT_NE(sup.warnings[0].find("Open vSwitch: ovs-vswitchd (pid 101) died; restarting it from " +
                                 (state / "ovs/conf.db").string()),
            std::string::npos)
      << sup.warnings[0];
  ASSERT_EQ(sup.info.size(), 1u);
  EXPECT_NE(sup.info[0].find("restarted after ovs-vswitchd (pid 101) died"), std::string::npos) << sup.info[0];
  // Only the dead one is started, on the same database; no new database; the bridge re-asserted.
  EXPECT_EQ(runner.matching("ovs-vswitchd unix:" + (state / "ovs/db.sock").string()).size(), 1u);
  EXPECT_TRUE(runner.matching("ovsdb-server ").empty());
  EXPECT_TRUE(runner.matching("ovsdb-tool").empty());
  EXPECT_EQ(runner.matching("--may-exist add-br cw-br0").size(), 1u);
  const OvsHealth& h = (*ovs)->health();
  EXPECT_EQ(h.state, OvsHealth::State::kUp);
  EXPECT_EQ(h.restarts, 1u);
  EXPECT_EQ(h.cause, "ovs-vswitchd (pid 101) died");
  EXPECT_NE(h.last_restart_unix_ms, 0);

  // The database's turn: restarted, and the switch daemon (alive) left alone.
  runner.clear();
  runner.live_.erase(100);
  sup = (*ovs)->supervise(t0 + std::chrono::milliseconds(500));
  EXPECT_TRUE(sup.restarted);
  EXPECT_EQ(runner.matching("ovsdb-server " + (state / "ovs/conf.db").string()).size(), 1u);
  EXPECT_TRUE(runner.matching("ovs-vswitchd unix:").empty());
  EXPECT_EQ((*ovs)->health().restarts, 2u);
}

TEST_F(OvsTest, SupervisionBacksOffAndTurnsLoudButKeepsTrying) {
  daemonsRunning();
  auto ovs = Ovs::open(opts, runner);
  ASSERT_TRUE(ovs);
  runner.onFail("ovs-vswitchd unix:", "ovs-vswitchd: /dev/net/tun: No such device");
  runner.live_.erase(101);
  auto t = std::chrono::steady_clock::now();
  std::vector<long> waits;  // seconds between attempts
  OvsSupervision last;
  for (unsigned attempt = 1; attempt <= Ovs::kMaxQuietAttempts; ++attempt) {
    last = (*ovs)->supervise(t);
    EXPECT_FALSE(last.restarted);
    EXPECT_EQ((*ovs)->health().attempts, attempt);
    // Nothing more until the back-off is over.
    auto before = runner.matching("ovs-vswitchd unix:").size();
    EXPECT_TRUE((*ovs)->supervise(t + std::chrono::milliseconds(900)).warnings.empty());
    EXPECT_EQ(runner.matching("ovs-vswitchd unix:").size(), before);
    const std::string& msg = attempt < Ovs::kMaxQuietAttempts ? last.warnings.back() : last.errors.back();
    auto at = msg.find("next in ");
    ASSERT_NE(at, std::string::npos) << msg;
    waits.push_back(std::stol(msg.substr(at + 8)));
    t += std::chrono::seconds(waits.back());
  }
  EXPECT_EQ(waits, (std::vector<long>{1, 2, 4, 8, 16}));
  EXPECT_EQ((*ovs)->health().state, OvsHealth::State::kFailing);
  ASSERT_EQ(last.errors.size(), 1u);
  EXPECT_NE(last.errors[0].find("every cell is without network (fail-secure)"), std::string::npos) << last.errors[0];
  EXPECT_NE(last.errors[0].find("/dev/net/tun: No such device"), std::string::npos) << last.errors[0];
  EXPECT_NE((*ovs)->health().last_error.find("cannot start ovs-vswitchd"), std::string::npos);

  // Fixed: the next attempt succeeds.
  runner.on("ovs-vswitchd unix:", CommandResult{});
  restartablePidfiles(runner, state);
  auto sup = (*ovs)->supervise(t);
  EXPECT_TRUE(sup.restarted);
  EXPECT_EQ((*ovs)->health().state, OvsHealth::State::kUp);
  EXPECT_EQ((*ovs)->health().attempts, 0u);
  EXPECT_EQ((*ovs)->health().restarts, 1u);
}

TEST_F(OvsTest, SupervisionOfAnExternalSwitchOnlyReports) {
  opts.existing_db = "unix:/run/openvswitch/db.sock";
  auto ovs = Ovs::open(opts, runner);
  ASSERT_TRUE(ovs);
  auto t = std::chrono::steady_clock::now();
  EXPECT_TRUE((*ovs)->supervise(t).errors.empty());
  EXPECT_EQ(runner.matching("get Open_vSwitch . ovs_version").size(), 1u);
  EXPECT_TRUE((*ovs)->supervise(t + std::chrono::seconds(1)).errors.empty());
  EXPECT_EQ(runner.matching("get Open_vSwitch . ovs_version").size(), 1u);  // probed every 5 s

  runner.onFail("ovs_version", "ovs-vsctl: unix:/run/openvswitch/db.sock: database connection failed");
  auto down = (*ovs)->supervise(t + Ovs::kExternalProbe);
  ASSERT_EQ(down.errors.size(), 1u);
  EXPECT_NE(down.errors[0].find("It is not cellwall's to restart"), std::string::npos) << down.errors[0];
  EXPECT_EQ((*ovs)->health().state, OvsHealth::State::kDown);
  for (const auto& l : runner.log()) {
    EXPECT_EQ(l.rfind("ovsdb-server", 0), std::string::npos) << l;
    EXPECT_EQ(l.rfind("ovs-vswitchd", 0), std::string::npos) << l;
  }
  runner.on("ovs_version", CommandResult{});
  auto back = (*ovs)->supervise(t + 2 * Ovs::kExternalProbe);
  EXPECT_TRUE(back.restarted);
  EXPECT_EQ((*ovs)->health().state, OvsHealth::State::kUp);
  EXPECT_EQ(runner.matching("--may-exist add-br cw-br0").size(), 1u);  // re-asserted
}

TEST_F(OvsTest, EnsureBridgeIsOneTransaction) {
  daemonsRunning();
  opts.controllers = {"unix:cw-br0.cellwalld", "ssl:192.0.2.1:6654"};
  auto ovs = Ovs::open(opts, runner);
  ASSERT_TRUE(ovs);
  runner.clear();
  ASSERT_TRUE((*ovs)->ensureBridge());
  ASSERT_EQ(runner.log().size(), 1u);
  char dpid[17];
  std::snprintf(dpid, sizeof dpid, "%016llx", static_cast<unsigned long long>(Ovs::datapathIdFor("cw-br0")));
  EXPECT_EQ(runner.log()[0],
            "ovs-vsctl " + db() +
                " -- --may-exist add-br cw-br0 -- set Bridge cw-br0 datapath_type=netdev fail_mode=secure "
                "protocols=OpenFlow10,OpenFlow13 other_config:disable-in-band=true other_config:datapath-id=\"" +
                dpid +
                "\" -- --id=@c0 create Controller target=\"unix:cw-br0.cellwalld\" connection_mode=out-of-band "
                "controller_rate_limit=1000 controller_burst_limit=250 -- --id=@c1 create Controller "
                "target=\"ssl:192.0.2.1:6654\" connection_mode=out-of-band controller_rate_limit=1000 "
                "controller_burst_limit=250 -- set Bridge cw-br0 controller=@c0,@c1 -- set Open_vSwitch . "
                "other_config:userspace-tso-enable=true");
  EXPECT_EQ((*ovs)->datapathId(), Ovs::datapathIdFor("cw-br0"));
  EXPECT_NE(Ovs::datapathIdFor("cw-br0"), Ovs::datapathIdFor("cw-br1"));
}

TEST(OvsRunDir, IsWhereALocalSwitchLooksForARelativeUnixController) {
  OvsOptions o;
  o.state_dir = "/var/lib/cellwall";
  EXPECT_EQ(Ovs::runDirFor(o), fs::path("/var/lib/cellwall/ovs"));  // embedded: its private rundir
  o.existing_db = "unix:/run/openvswitch/db.sock";
  EXPECT_EQ(Ovs::runDirFor(o), fs::path("/run/openvswitch"));  // existing, local: db.sock's directory
  o.existing_db = "tcp:192.0.2.1:6640";
  EXPECT_EQ(Ovs::runDirFor(o), std::nullopt);  // not on this host: no UNIX socket reaches it
  o.existing_db = "unix:db.sock";
  EXPECT_EQ(Ovs::runDirFor(o), std::nullopt);  // relative: to what, we cannot know
}

TEST_F(OvsTest, SystemDatapathSkipsUserspaceTso) {
  daemonsRunning();
  opts.datapath = "system";
  auto ovs = Ovs::open(opts, runner);
  ASSERT_TRUE(ovs);
  ASSERT_TRUE((*ovs)->ensureBridge());
  EXPECT_EQ(runner.matching("userspace-tso").size(), 0u);
  EXPECT_EQ(runner.matching("datapath_type=system").size(), 1u);
}

TEST_F(OvsTest, DatapathMaxIdleOnlyOnEmbeddedSwitch) {
  daemonsRunning();
  opts.datapath_max_idle_ms = 100;
  auto ovs = Ovs::open(opts, runner);
  ASSERT_TRUE(ovs);
  ASSERT_TRUE((*ovs)->ensureBridge());
  EXPECT_EQ(runner.matching("-- set Open_vSwitch . other_config:max-idle=100").size(), 1u);

  // A switch cellwall did not start keeps its own settings.
  runner.clear();
  opts.existing_db = "unix:/run/openvswitch/db.sock";
  auto existing = Ovs::open(opts, runner);
  ASSERT_TRUE(existing) << existing.error().message;
  ASSERT_TRUE((*existing)->ensureBridge());
  EXPECT_EQ(runner.matching("max-idle").size(), 0u);
}

TEST_F(OvsTest, AddPortWaitsForOfport) {
  daemonsRunning();
  auto ovs = Ovs::open(opts, runner);
  ASSERT_TRUE(ovs);
  runner.clear();
  runner.onOutput("get Interface cw-c1 ofport", "7\n");
  runner.onOutput("get Interface cw-c1 ofport", "-1\n", 2);
  auto port = (*ovs)->addPort("cw-c1", 7);
  ASSERT_TRUE(port) << port.error().message;
  EXPECT_EQ(*port, 7u);
  EXPECT_EQ(runner.log()[0],
            "ovs-vsctl " + db() + " -- --may-exist add-port cw-br0 cw-c1 -- set Interface cw-c1 ofport_request=7");
  EXPECT_EQ(runner.matching("get Interface cw-c1 ofport").size(), 3u);
  EXPECT_FALSE((*ovs)->addPort("eth0", std::nullopt));
  EXPECT_FALSE((*ovs)->addPort("cw-c2", 70000));
}

TEST_F(OvsTest, AddPortReportsInterfaceError) {
  daemonsRunning();
  opts.timeout = std::chrono::seconds(0);
  auto ovs = Ovs::open(opts, runner);
  ASSERT_TRUE(ovs);
  runner.onOutput("get Interface cw-c1 ofport", "-1\n");
  runner.onOutput("get Interface cw-c1 error", "\"could not open network device cw-c1 (No such device)\"\n");
  auto port = (*ovs)->addPort("cw-c1", std::nullopt);
  ASSERT_FALSE(port);
  EXPECT_EQ(port.error().message,
            "port cw-c1 on cw-br0 got no OpenFlow port number: \"could not open network device cw-c1 (No such "
            "device)\"");
}

TEST_F(OvsTest, VsctlFailureNamesWhatFailed) {
  daemonsRunning();
  auto ovs = Ovs::open(opts, runner);
  ASSERT_TRUE(ovs);
  runner.onFail("add-br", "ovs-vsctl: unix:/x/db.sock: database connection failed (No such file or directory)\n");
  auto r = (*ovs)->ensureBridge();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message,
            "cannot create or configure bridge cw-br0: ovs-vsctl: unix:/x/db.sock: database connection failed (No "
            "such file or directory)");
  runner.on("del-port", CommandResult{142, false, "", ""});
  auto d = (*ovs)->delPort("cw-c1");
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().message.find("timed out"), std::string::npos);
}

TEST_F(OvsTest, ZoneLimitsGoToOurSwitchsDatapath) {
  daemonsRunning();
  auto ovs = Ovs::open(opts, runner);
  ASSERT_TRUE(ovs);
  runner.clear();
  ASSERT_TRUE((*ovs)->setZoneLimit(7, 5000));
  ASSERT_TRUE((*ovs)->clearZoneLimit(7));
  runner.onOutput("ct-get-limits", "default limit=0\nzone=7,limit=5000,count=12\nzone=9,limit=50,count=50\n");
  auto u = (*ovs)->zoneUsage({7, 9});
  ASSERT_TRUE(u);
  const std::string ctl = "ovs-appctl -t " + (state / "ovs/ovs-vswitchd.ctl").string() + " --timeout=10 ";
  const std::vector<std::string> expected = {
      ctl + "dpctl/ct-set-limits netdev@ovs-netdev zone=7,limit=5000",
      ctl + "dpctl/ct-del-limits netdev@ovs-netdev zone=7",
      ctl + "dpctl/ct-get-limits netdev@ovs-netdev zone=7,9"};
  EXPECT_EQ(runner.log(), expected);
  ASSERT_EQ(u->size(), 2u);
  EXPECT_EQ(u->at(7).limit, 5000u);
  EXPECT_EQ(u->at(7).count, 12u);
  EXPECT_EQ(u->at(9).count, 50u);
  runner.onFail("ct-set-limits", "dpctl/ct-set-limits: unknown datapath\n", 2);
  auto bad = (*ovs)->setZoneLimit(3, 10);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message, "cannot limit conntrack zone 3 to 10 connections: dpctl/ct-set-limits: unknown datapath");
}

TEST(OvsZoneLimits, ParsesWhatOpenVSwitchPrints) {
  auto z = Ovs::parseZoneLimits("default limit=0\nzone=1,limit=200000,count=0\nzone=65535,limit=3,count=3\n"
                                "zone=70000,limit=1,count=1\ngarbage\n");
  ASSERT_EQ(z.size(), 2u);
  EXPECT_EQ(z.at(1).limit, 200000u);
  EXPECT_EQ(z.at(65535).count, 3u);
  EXPECT_TRUE(Ovs::parseZoneLimits("").empty());
}

TEST_F(OvsTest, ListPorts) {
  daemonsRunning();
  auto ovs = Ovs::open(opts, runner);
  ASSERT_TRUE(ovs);
  runner.onOutput("list-ports cw-br0", "cw-c1\ncw-g-default\n");
  runner.onOutput("list Interface", "cw-g-default,1\ncw-c1,7\n");
  auto ports = (*ovs)->listPorts();
  ASSERT_TRUE(ports);
  EXPECT_EQ(*ports, (std::vector<OvsPort>{{"cw-g-default", 1}, {"cw-c1", 7}}));
  EXPECT_EQ(runner.log().back(), "ovs-vsctl " + db() +
                                     " --format=csv --data=bare --no-headings --columns=name,ofport list Interface "
                                     "cw-c1 cw-g-default");
}

TEST_F(OvsTest, StopRemovesBridgeDaemonsAndFiles) {
  daemonsRunning();
  auto ovs = Ovs::open(opts, runner);
  ASSERT_TRUE(ovs);
  runner.clear();
  ASSERT_TRUE((*ovs)->stop(true));
  const std::vector<std::string> expected = {"ovs-vsctl " + db() + " -- --if-exists del-br cw-br0", "terminate 101",
                                             "terminate 100"};
  EXPECT_EQ(runner.log(), expected);
  EXPECT_FALSE(fs::exists(state / "ovs"));
}

TEST_F(OvsTest, ExternalDatabaseTouchesOnlyOurBridge) {
  opts.existing_db = "unix:/run/openvswitch/db.sock";
  auto ovs = Ovs::open(opts, runner);
  ASSERT_TRUE(ovs);
  EXPECT_FALSE((*ovs)->isEmbedded());
  EXPECT_EQ((*ovs)->ofctlTarget(), "cw-br0");
  ASSERT_TRUE((*ovs)->stop(true));
  const std::vector<std::string> expected = {
      "ovs-vsctl --db=unix:/run/openvswitch/db.sock --timeout=10 --no-wait show",
      "ovs-vsctl --db=unix:/run/openvswitch/db.sock --timeout=10 -- --if-exists del-br cw-br0"};
  EXPECT_EQ(runner.log(), expected);
  EXPECT_EQ(runner.matching("terminate").size(), 0u);
}

}  // namespace
}  // namespace cw
