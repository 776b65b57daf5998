// The terminal's answer lines and the desktop notification's text.
#include <gtest/gtest.h>

#include "cli/notify_cmd.h"
#include "cli/prompt_cmd.h"

namespace cw::cli {
namespace {

TEST(AnswerLine, KeysMapOntoAnswers) {
  api::PromptAnswer a;
  std::string why;
  ASSERT_TRUE(parseAnswerLine("a", 7, a, why)) << why;
  EXPECT_EQ(a.id, 7u);
  EXPECT_EQ(a.action, "allow");
  EXPECT_EQ(a.lifetime, "once");
  ASSERT_TRUE(parseAnswerLine("5", 7, a, why)) << why;
  EXPECT_EQ(a.lifetime, "5m");
  ASSERT_TRUE(parseAnswerLine("D host any", 7, a, why)) << why;
  EXPECT_EQ(a.action, "deny");
  EXPECT_EQ(a.lifetime, "forever");
  EXPECT_EQ(a.scope, "host");
  EXPECT_TRUE(a.any_port);
  api::PromptAnswer skip;
  EXPECT_FALSE(parseAnswerLine("s", 7, skip, why));
  EXPECT_FALSE(parseAnswerLine("what", 7, skip, why));
  EXPECT_FALSE(parseAnswerLine("a everywhere", 7, skip, why));
  EXPECT_FALSE(why.empty());
}

TEST(Notification, SaysWhoWantsWhatAndEscapesMarkup) {
  api::PromptInfo p;
  p.id = 3;
  p.app = "browser";
  p.proto = "tcp";
  p.remote_ip = "192.0.2.7";
  p.remote_port = 443;
  p.names = "a<b>.example";  // names come from the cell's DNS answers: not markup
  p.timeout_in_ms = 59001;
  p.timeout_action = "deny";
  p.connections = 2;
  auto t = notificationText(p);
  EXPECT_EQ(t.summary, "browser wants to connect");
  EXPECT_NE(t.body.find("tcp a&lt;b&gt;.example (192.0.2.7) port 443"), std::string::npos) << t.body;
  EXPECT_EQ(t.body.find("<b>"), std::string::npos);
  EXPECT_NE(t.body.find("2 connections wait"), std::string::npos);
  EXPECT_NE(t.body.find("deny in 60 s"), std::string::npos) << t.body;
  p.names.clear();
  p.connections = 1;
  t = notificationText(p);
  EXPECT_NE(t.body.find("tcp 192.0.2.7 port 443"), std::string::npos) << t.body;
  EXPECT_EQ(t.body.find("connections wait"), std::string::npos);
}

}  // namespace
}  // namespace cw::cli
