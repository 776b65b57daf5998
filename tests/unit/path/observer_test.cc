// The daemon's observer behind the packet path: a snooped resolver answer teaches the cell its
// names before its next connection is decided, and each decision becomes one log event.
#include "path/observer.h"

#include <gtest/gtest.h>

#include "decide/pipeline.h"
#include "dns/build.h"
#include "fixture.h"

namespace cw::path {
namespace {

using testing::ip;
using testing::PathTest;

class ObserverTest : public PathTest {
 protected:
  Observer observer;
  void SetUp() override { path.setObserver(&observer); }

  std::vector<std::uint8_t> answerFrame(const decide::CellPort& cell, const std::string& name,
                                        const char* addr) {
    dns::ResponseSpec spec;
    spec.qname = name;
    spec.answers.push_back(dns::aRecord(name, ip(addr)));
    const auto msg = dns::buildResponse(spec);
    return packet::buildUdp4(toCell(cell), gw.ip, cell.ip, 53, 5000, Bytes(msg));
  }
};

TEST_F(ObserverTest, ASnoopedAnswerNamesTheNextConnection) {
  const auto answer = answerFrame(web, "cdn.example.test", "192.0.2.10");
  packetIn(1, answer, ofp::PacketInReason::kAction,
           decide::makeCookie(decide::CookieKind::kDnsAnswer, web.cell_id, 0));
  EXPECT_EQ(observer.answersParsed(), 1u);
  EXPECT_EQ(observer.namesLearned(), 1u);

  packetIn(2, tcpFrom(web, "192.0.2.10", 443));
  const auto events = observer.drain();
  ASSERT_EQ(events.size(), 1u);
  const DecisionEvent& e = events[0];
  EXPECT_EQ(e.cell, web.cell_id);
  EXPECT_EQ(e.app, "web");
  EXPECT_EQ(e.proto, "tcp");
  EXPECT_EQ(e.remote_ip, "192.0.2.10");
  EXPECT_EQ(e.remote_port, 443);
  EXPECT_EQ(e.local_port, 40000);
  EXPECT_EQ(e.names, "cdn.example.test");
  EXPECT_EQ(e.verdict, "allow");
  EXPECT_EQ(e.reason, "policy_rule");
  EXPECT_TRUE(e.allowed);
  EXPECT_TRUE(observer.drain().empty()) << "drained once";
}

TEST_F(ObserverTest, AnAnswerThatDoesNotParseIsCountedByItsError) {
  const std::vector<std::uint8_t> junk{0x12, 0x34, 0x81};
  const auto frame = packet::buildUdp4(toCell(web), gw.ip, web.ip, 53, 5000, Bytes(junk));
  packetIn(1, frame, ofp::PacketInReason::kAction,
           decide::makeCookie(decide::CookieKind::kDnsAnswer, web.cell_id, 0));
  EXPECT_EQ(observer.answersParsed(), 0u);
  std::uint64_t errors = 0;
  for (std::size_t e = 0; e < static_cast<std::size_t>(dns::ParseError::kCount); ++e)
    errors += observer.dnsErrors(static_cast<dns::ParseError>(e));
  EXPECT_EQ(errors, 1u);
}

// A reply from the uplink that conntrack did not know (its entry expired) is decided again but
// is no new connection: the log does not show it twice.
TEST_F(ObserverTest, RepliesFromTheUplinkAreNotLoggedAsConnections) {
  packetIn(1, tcpTo(web, "192.0.2.10", 443));
  EXPECT_EQ(path.reasonCount(decide::Reason::kReturnTraffic), 1u);
  EXPECT_TRUE(observer.drain().empty());
}

}  // namespace
}  // namespace cw::path
