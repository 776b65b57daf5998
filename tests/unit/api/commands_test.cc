// The command codec: what the control socket and the web UI's POST /api accept.
#include "api/commands.h"

#include <gtest/gtest.h>

namespace cw::api {
namespace {

TEST(Commands, RoundTripThroughTheWireForm) {
  PromptAnswer a;
  a.id = 9;
  a.action = "reject";
  a.scope = "domain";
  a.host = "api.example.org";
  a.any_port = true;
  a.lifetime = "exit";
  a.connections = 3;
  auto back = decodeCommand(encodeCommand(Command{a}));
  ASSERT_TRUE(back) << back.error().message;
  const auto* got = std::get_if<PromptAnswer>(&*back);
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(got->id, 9u);
  EXPECT_EQ(got->scope, "domain");
  EXPECT_EQ(got->host, "api.example.org");
  EXPECT_TRUE(got->any_port);
  EXPECT_EQ(got->lifetime, "exit");
  EXPECT_EQ(got->connections, 3u);

  auto rep = decodeCommand(R"({"cmd":"rules.replace","id":4,"rule_text":"action = \"deny\""})");
  ASSERT_TRUE(rep);
  ASSERT_NE(std::get_if<RuleReplace>(&*rep), nullptr);
  EXPECT_EQ(std::get_if<RuleReplace>(&*rep)->id, 4u);
  EXPECT_TRUE(std::holds_alternative<UiInfo>(*decodeCommand(R"({"cmd":"ui"})")));
}

TEST(Commands, FractionsAndNonObjectsAreRefusedWhole) {
  // 1e300 into a 32-bit id would be undefined behaviour (the fuzzer found it).
  EXPECT_FALSE(decodeCommand(R"({"cmd":"rules.rm","id":1e300})"));
  EXPECT_FALSE(decodeCommand(R"({"cmd":"log","app":"","after_id":0,"limit":2.5})"));
  EXPECT_FALSE(decodeCommand(R"({"cmd":"status","x":[[{"y":0.1}]]})"));
  EXPECT_FALSE(decodeCommand("[1]"));
  EXPECT_FALSE(decodeCommand("not json"));
  EXPECT_FALSE(decodeReply(R"({"ok":true,"version":1.5})"));
  EXPECT_TRUE(decodeCommand(R"({"cmd":"rules.rm","id":12})"));
}

}  // namespace
}  // namespace cw::api
