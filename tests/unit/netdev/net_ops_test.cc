#include "netdev/net_ops.h"

#include <gtest/gtest.h>

#include "netdev/fake_runner.h"

namespace cw {
namespace {

class NetOpsTest : public ::testing::Test {
 protected:
  FakeRunner runner;
  NetOps net{runner};
};

TEST_F(NetOpsTest, IssuesExactCommands) {
  auto mac = MacAddr::parse("02:00:00:00:00:07");
  auto addr = IfAddress::parse("10.200.0.1/16");
  ASSERT_TRUE(addr);
  struct Case {
    const char* what;
    std::function<Expected<void>()> call;
    const char* command;
  };
  std::vector<Case> cases = {
      {"netns", [&] { return net.createNetns("cw-c3"); }, "ip netns add cw-c3"},
      {"veth", [&] { return net.createVethPair("cw-c3", "eth0", "cw-c3", mac); },
       "ip link add cw-c3 type veth peer name eth0 netns cw-c3 address 02:00:00:00:00:07"},
      {"veth root", [&] { return net.createVethPair("cw-a", "cw-b", "", std::nullopt); },
       "ip link add cw-a type veth peer name cw-b"},
      {"tap", [&] { return net.createTap("cw-c4"); }, "ip tuntap add dev cw-c4 mode tap"},
      {"move", [&] { return net.moveLink("cw-u-x", "uplink"); }, "ip link set dev cw-u-x netns uplink"},
      {"up", [&] { return net.setLinkUp("cw-c3", "eth0"); }, "ip -n cw-c3 link set dev eth0 up"},
      {"up root", [&] { return net.setLinkUp("", "cw-c3"); }, "ip link set dev cw-c3 up"},
      {"mac", [&] { return net.setMac("cw-c3", "eth0", *mac); },
       "ip -n cw-c3 link set dev eth0 address 02:00:00:00:00:07"},
      {"addr", [&] { return net.addAddress("cw-c3", "eth0", *addr); }, "ip -n cw-c3 addr add 10.200.0.1/16 dev eth0"},
      {"route", [&] { return net.addRoute("cw-c3", "default", IpAddr::parse("10.200.0.1"), "eth0", true); },
       "ip -n cw-c3 route add default via 10.200.0.1 dev eth0 onlink"},
      {"route dev", [&] { return net.addRoute("", "10.1.0.0/16", std::nullopt, "cw-x", false); },
       "ip route add 10.1.0.0/16 dev cw-x"},
      {"sysctl", [&] { return net.setSysctl("cw-g-a", "net.ipv4.ip_forward", "1"); },
       "ip netns exec cw-g-a sysctl -q -w net.ipv4.ip_forward=1"},
      {"sysctl root", [&] { return net.setSysctl("", "net.ipv4.conf.cw-u-a.forwarding", "1"); },
       "sysctl -q -w net.ipv4.conf.cw-u-a.forwarding=1"},
      {"nft", [&] { return net.nft("cw-g-a", "table inet t\n"); }, "ip netns exec cw-g-a nft -f -"},
  };
  for (const auto& c : cases) {
    runner.clear();
    ASSERT_TRUE(c.call()) << c.what;
    ASSERT_EQ(runner.log().size(), 1u) << c.what;
    EXPECT_EQ(runner.log()[0], c.command) << c.what;
  }
  EXPECT_EQ(runner.commands()[0].stdin_text, "table inet t\n");
}

TEST_F(NetOpsTest, RefusesWhatItDidNotCreate) {
  EXPECT_FALSE(net.createNetns("firefox"));
  EXPECT_FALSE(net.deleteNetns("default"));
  EXPECT_FALSE(net.deleteLink("", "eth0"));
  EXPECT_FALSE(net.createVethPair("veth0", "eth0", "", std::nullopt));
  EXPECT_FALSE(net.createTap("tap0"));  // not cellwall's

  EXPECT_FALSE(net.createNetns("cw-../x"));
  EXPECT_FALSE(net.setLinkUp("", "-all"));
  EXPECT_FALSE(net.createVethPair("cw-0123456789abc", "eth0", "", std::nullopt));  // 16 chars
  EXPECT_FALSE(net.setSysctl("", "net.ipv4.ip_forward", "1;2"));
  EXPECT_FALSE(net.removeAllWithPrefix("c"));
  EXPECT_TRUE(runner.log().empty());
  // Inside a namespace, any valid name may be deleted.
  runner.onOutput("-json link show", R"([{"ifindex":2,"ifname":"eth0","flags":["UP"],"address":"02:00:00:00:00:01"}])");
  EXPECT_TRUE(net.deleteLink("cw-c3", "eth0"));
  EXPECT_EQ(runner.log().back(), "ip -n cw-c3 link del dev eth0");
}

TEST_F(NetOpsTest, TheChecksumRuleIsNeverTheHostsAndSaysWhatIsMissing) {
  EXPECT_FALSE(net.fillUdpChecksums("", "eth0"));
  EXPECT_FALSE(net.fillsUdpChecksums(""));
  EXPECT_FALSE(net.fillUdpChecksums("-n", "eth0"));
  EXPECT_FALSE(net.fillUdpChecksums("cw-c3", "-eth0"));
  EXPECT_TRUE(runner.log().empty());

  ASSERT_TRUE(net.fillUdpChecksums("cw-c3", "eth0"));
  EXPECT_EQ(runner.log(), (std::vector<std::string>{
                              "ip netns exec cw-c3 ethtool -K eth0 tx-udp-segmentation off",
                              "ip netns exec cw-c3 iptables -w -t mangle -A POSTROUTING -p udp -j CHECKSUM --checksum-fill",
                          }));
  runner.onFail("ethtool", "exec of \"ethtool\" failed: No such file or directory\n", 255, 1);
  auto no_ethtool = net.fillUdpChecksums("cw-c3", "eth0");
  ASSERT_FALSE(no_ethtool);
  EXPECT_EQ(no_ethtool.error().message,
            "cannot turn off UDP segmentation offload on eth0 in namespace cw-c3: exec of \"ethtool\" failed: No such "
            "file or directory (is ethtool installed?)");

  runner.onFail("iptables", "exec of \"iptables\" failed: No such file or directory\n", 255, 1);
  auto missing = net.fillUdpChecksums("cw-c3", "eth0");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message,
            "cannot add the UDP checksum rule (iptables -t mangle ... -j CHECKSUM --checksum-fill) in namespace "
            "cw-c3: exec of \"iptables\" failed: No such file or directory (install the iptables package)");
  runner.onFail("iptables", "iptables v1.8.9 (nf_tables): Couldn't load target `CHECKSUM':No such file or directory\n", 2, 1);
  auto kernel = net.fillUdpChecksums("cw-c3", "eth0");
  ASSERT_FALSE(kernel);
  EXPECT_NE(kernel.error().message.find("(the kernel needs the xt_CHECKSUM module"), std::string::npos)
      << kernel.error().message;

  EXPECT_EQ(net.fillsUdpChecksums("cw-g-a").value(), true);
  EXPECT_EQ(runner.log().back(), "ip netns exec cw-g-a iptables -w -t mangle -C POSTROUTING -p udp -j CHECKSUM --checksum-fill");
  runner.onFail(" -C ", "iptables: Bad rule (does a matching rule exist in that chain?).\n", 1, 1);
  EXPECT_EQ(net.fillsUdpChecksums("cw-g-a").value(), false);
}

TEST_F(NetOpsTest, ErrorsNameObjectStderrAndRemedy) {
  runner.onFail("ip netns add", "mount --make-shared /run/netns failed: Operation not permitted\n");
  auto r = net.createNetns("cw-c3");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message,
            "cannot create network namespace cw-c3: mount --make-shared /run/netns failed: Operation not "
            "permitted (run as root or give CAP_SYS_ADMIN)");

  runner.onFail("addr add", "RTNETLINK answers: File exists\n", 2);
  auto a = net.addAddress("cw-c3", "eth0", *IfAddress::parse("10.0.0.2/32"));
  ASSERT_FALSE(a);
  EXPECT_NE(a.error().message.find("cannot add address 10.0.0.2/32 to eth0 in namespace cw-c3: RTNETLINK answers: File exists"),
            std::string::npos);

  runner.on("nft -f -", CommandResult{1, false, "", "/dev/stdin:1:1-3: Error: syntax error"});
  auto n = net.nft("cw-g-a", "bad");
  ASSERT_FALSE(n);
  EXPECT_NE(n.error().message.find("in namespace cw-g-a: /dev/stdin:1:1-3: Error: syntax error"), std::string::npos);

  runner.on("sysctl", CommandResult{-1, true, "", ""});
  auto s = net.setSysctl("", "net.ipv4.ip_forward", "1");
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("timed out"), std::string::npos);
}

TEST_F(NetOpsTest, DeleteIsIdempotent) {
  runner.onOutput("netns list", R"([{"name":"cw-a","id":0},{"name":"other"}])");
  runner.onOutput("-json link show", R"([{"ifindex":1,"ifname":"lo"}])");
  EXPECT_TRUE(net.deleteNetns("cw-missing"));
  EXPECT_TRUE(net.deleteLink("", "cw-missing"));
  EXPECT_EQ(runner.matching(" del").size(), 0u);
  EXPECT_TRUE(net.deleteNetns("cw-a"));
  EXPECT_EQ(runner.log().back(), "ip netns del cw-a");
}

TEST_F(NetOpsTest, RemoveAllWithPrefixTouchesOnlyPrefixed) {
  runner.onOutput("netns list", R"([{"name":"cw-a"},{"name":"cw-b"},{"name":"docker1"}])");
  runner.onOutput("-json link show",
                  R"([{"ifindex":1,"ifname":"lo"},{"ifindex":7,"ifname":"cw-g-x"},{"ifindex":8,"ifname":"eth0"}])");
  ASSERT_TRUE(net.removeAllWithPrefix("cw-"));
  auto dels = runner.matching(" del");
  ASSERT_EQ(dels.size(), 3u);
  EXPECT_EQ(dels[0], "ip netns del cw-a");
  EXPECT_EQ(dels[1], "ip netns del cw-b");
  EXPECT_EQ(dels[2], "ip link del dev cw-g-x");
}

TEST_F(NetOpsTest, RemoveAllReportsEveryFailure) {
  runner.onOutput("netns list", R"([{"name":"cw-a"},{"name":"cw-b"}])");
  runner.onFail("ip netns del", "Cannot remove namespace file: Device or resource busy");
  auto r = net.removeAllWithPrefix("cw-");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("cw-a"), std::string::npos);
  EXPECT_NE(r.error().message.find("cw-b"), std::string::npos);
}

TEST(ParseTest, LinkList) {
  auto links = parseLinkList(
      R"([{"ifindex":5,"ifname":"cw-tA","flags":["BROADCAST","MULTICAST","UP"],"address":"6e:78:cd:2f:f4:aa"}])");
  ASSERT_TRUE(links);
  ASSERT_EQ(links->size(), 1u);
  EXPECT_EQ((*links)[0].name, "cw-tA");
  EXPECT_EQ((*links)[0].ifindex, 5);
  EXPECT_TRUE((*links)[0].up);
  EXPECT_EQ((*links)[0].mac.str(), "6e:78:cd:2f:f4:aa");
  EXPECT_TRUE(parseLinkList("")->empty());
  EXPECT_FALSE(parseLinkList("{"));
  EXPECT_FALSE(parseLinkList(R"([{"ifname":3}])"));
  EXPECT_FALSE(parseNetnsList(R"({"name":"x"})"));
  EXPECT_EQ(parseNetnsList(R"([{"name":"cw-a","id":0}])")->at(0), "cw-a");
}

TEST(ParseTest, IfAddress) {
  auto a = IfAddress::parse("10.200.3.1/16");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->str(), "10.200.3.1/16");
  EXPECT_EQ(a->network().str(), "10.200.0.0/16");
  EXPECT_FALSE(IfAddress::parse("10.0.0.1"));
  EXPECT_FALSE(IfAddress::parse("10.0.0.1/33"));
  EXPECT_FALSE(IfAddress::parse("10.0.0.1/"));
}

}  // namespace
}  // namespace cw
