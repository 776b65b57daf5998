// What an IDS alert makes (daemon/auto_rules.h): the rule for the process, and the fold of K
// processes of one user into one rule for the user. The rules are round-tripped through their
// text, as the daemon stores them.
#include "daemon/auto_rules.h"

#include <gtest/gtest.h>

namespace cw::daemon {
namespace {

ids::Alert alert(std::uint16_t dport = 7777) {
  ids::Alert a;
  a.sid = 9000001;
  a.msg = "cellwall test: exfiltration marker";
  a.src = *IpAddr::parse("10.200.0.2");
  a.dst = *IpAddr::parse("10.250.0.1");
  a.sport = 40000;
  a.dport = dport;
  a.proto = 6;
  return a;
}

decide::ProcessInfo proc(std::uint32_t pid, std::uint32_t uid, std::string exe) {
  decide::ProcessInfo p;
  p.pid = pid;
  p.uid = uid;
  p.exe = std::move(exe);
  p.comm = "python3";
  p.user = uid == 65534 ? "nobody" : "";
  return p;
}

policy::Rule ruleFor(const decide::ProcessInfo& p) { return autoRuleFor(alert(), &p); }

// Stored rule as the rule book lists it.
api::RuleInfo stored(std::uint32_t id, const policy::Rule& r, const char* origin = kIdsOrigin) {
  api::RuleInfo info;
  info.id = id;
  info.app = "app";
  info.action = "deny";
  info.text = policy::exportRule(r);
  info.origin = origin;
  return info;
}

TEST(AutoRules, AnAlertDeniesItsProcessUntilTheAppExits) {
  const auto p = proc(4321, 65534, "/usr/bin/python3.11");
  policy::Rule r = autoRuleFor(alert(), &p);
  auto back = policy::parseRule(policy::exportRule(r), "ids");
  ASSERT_TRUE(back) << back.error().str() << "\n" << policy::exportRule(r);
  EXPECT_EQ(back->action, policy::Action::kDeny);
  EXPECT_EQ(back->match.pids, std::vector<std::uint32_t>{4321});
  EXPECT_EQ(back->match.exe, std::vector<std::string>{"/usr/bin/python3.11"});
  EXPECT_EQ(back->match.users, std::vector<std::string>{"65534"});
  EXPECT_TRUE(back->lifetime.until_exit);
  EXPECT_NE(back->comment.find("sid 9000001"), std::string::npos) << back->comment;
  // It matches that process and no other.
  policy::AppPolicy pol;
  pol.default_action = policy::DefaultAction::kAllow;
  pol.rules.push_back(*back);
  policy::Matcher m(pol);
  policy::ConnKey k(policy::Protocol::kTcp, policy::Direction::kOutbound, *IpAddr::parse("10.250.0.1"), 7777);
  policy::ProcessKey same = p.key();
  k.process = &same;
  EXPECT_EQ(m.decide(k).action, policy::Action::kDeny);
  const auto other = proc(4322, 65534, "/usr/bin/python3.11");
  policy::ProcessKey o = other.key();
  k.process = &o;
  EXPECT_EQ(m.decide(k).action, policy::Action::kAllow);
}

TEST(AutoRules, WithoutAProcessTheDestinationIsDenied) {
  policy::Rule r = autoRuleFor(alert(443), nullptr);
  auto back = policy::parseRule(policy::exportRule(r), "ids");
  ASSERT_TRUE(back) << back.error().str();
  ASSERT_EQ(back->match.addresses.size(), 1u);
  EXPECT_EQ(back->match.addresses[0].str(), "10.250.0.1/32");
  EXPECT_EQ(back->match.protocol, policy::Protocol::kTcp);
  ASSERT_EQ(back->match.ports.size(), 1u);
  EXPECT_EQ(back->match.ports[0].lo, 443);
  EXPECT_EQ(back->match.processTier(), 0u);
}

TEST(AutoRules, KProcessesOfOneUserFoldIntoOneRule) {
  std::vector<api::RuleInfo> rules;
  rules.push_back(stored(1, ruleFor(proc(10, 1000, "/a"))));
  rules.push_back(stored(2, ruleFor(proc(11, 1001, "/b"))));
  // A rule someone wrote, not the IDS: never folded.
  policy::Rule mine;
  mine.match.pids = {12};
  mine.match.users = {"1000"};
  rules.push_back(stored(3, mine, "cli"));
  EXPECT_FALSE(foldAutoRules(rules, 2).has_value());
  rules.push_back(stored(4, ruleFor(proc(13, 1000, "/c"))));
  auto f = foldAutoRules(rules, 2);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->uid, 1000u);
  EXPECT_EQ(f->remove, (std::vector<std::uint32_t>{1, 4}));
  EXPECT_EQ(f->rule.match.users, std::vector<std::string>{"1000"});
  EXPECT_TRUE(f->rule.match.pids.empty());
  EXPECT_EQ(f->rule.action, policy::Action::kDeny);
  EXPECT_FALSE(foldAutoRules(rules, 3).has_value());
}

TEST(AutoRules, AProcessOrItsUserAlreadyDeniedMakesNoSecondRule) {
  const auto p = proc(10, 1000, "/a");
  std::vector<api::RuleInfo> rules{stored(1, autoRuleFor(alert(), &p))};
  EXPECT_TRUE(alreadyDenied(rules, p));
  EXPECT_FALSE(alreadyDenied(rules, proc(11, 1000, "/a")));
  policy::Rule user;
  user.match.users = {"1000"};
  rules.push_back(stored(2, user, kIdsFoldOrigin));
  EXPECT_TRUE(alreadyDenied(rules, proc(11, 1000, "/a")));
  EXPECT_FALSE(alreadyDenied(rules, proc(12, 1001, "/a")));
}

}  // namespace
}  // namespace cw::daemon
