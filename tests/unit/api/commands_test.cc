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
  auto back = decodeCommand(*encodeCommand(Command{a}));
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

// A prompt answer's count is either given or not: 0 travels as 0 (which the daemon refuses,
// as policy files do) instead of meaning "no limit", and no number wraps into a small count.
TEST(Commands, PromptAnswerCountIsGivenOrAbsent) {
  PromptAnswer a;
  a.id = 1;
  EXPECT_EQ(encodeCommand(Command{a})->find("connections"), std::string::npos);
  auto none = decodeCommand(*encodeCommand(Command{a}));
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_FALSE(std::get<PromptAnswer>(*none).connections.has_value());
  a.connections = 0;
  auto zero = decodeCommand(*encodeCommand(Command{a}));
  ASSERT_TRUE(zero) << zero.error().message;
  EXPECT_EQ(std::get<PromptAnswer>(*zero).connections, std::optional<std::uint32_t>(0));

  struct Case {
    const char* json;
    std::optional<std::uint32_t> want;
    bool ok;
  };
  const Case cases[] = {
      {R"({"cmd":"prompt.answer","id":1})", std::nullopt, true},
      {R"({"cmd":"prompt.answer","id":1,"connections":null})", std::nullopt, true},
      {R"({"cmd":"prompt.answer","id":1,"connections":0})", 0u, true},
      {R"({"cmd":"prompt.answer","id":1,"connections":5})", 5u, true},
      {R"({"cmd":"prompt.answer","id":1,"connections":4294967297})", 4294967295u, true},  // saturates
      {R"({"cmd":"prompt.answer","id":1,"connections":-1})", std::nullopt, false},
      {R"({"cmd":"prompt.answer","id":1,"connections":"5"})", std::nullopt, false},
  };
  for (const auto& c : cases) {
    auto got = decodeCommand(c.json);
    ASSERT_EQ(static_cast<bool>(got), c.ok) << c.json;
    if (c.ok) {
      EXPECT_EQ(std::get<PromptAnswer>(*got).connections, c.want) << c.json;
    }
  }
}

// Text that is not UTF-8 is refused, not sent with its bytes replaced: a policy file saved as
// Latin-1 would otherwise reach the daemon as valid text that says something else.
TEST(Commands, TextThatIsNotUtf8IsRefusedNotReplaced) {
  auto bad = encodeCommand(Command{PolicyImport{"app", "# caf\xe9\n", "latin1.toml", false}});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("not valid UTF-8"), std::string::npos) << bad.error().message;
  auto good = encodeCommand(Command{PolicyImport{"app", "# caf\xc3\xa9\n", "utf8.toml", false}});
  ASSERT_TRUE(good) << good.error().message;
  auto back = decodeCommand(*good);
  ASSERT_TRUE(back);
  EXPECT_EQ(std::get<PolicyImport>(*back).text, "# caf\xc3\xa9\n");
}

TEST(Commands, EnvironmentsRoundTrip) {
  auto add = decodeCommand(*encodeCommand(Command{EnvAdd{"[env.office]\npool = \"10.9.0.0/24\"\n", "cli"}}));
  ASSERT_TRUE(add) << add.error().message;
  ASSERT_NE(std::get_if<EnvAdd>(&*add), nullptr);
  EXPECT_EQ(std::get_if<EnvAdd>(&*add)->toml, "[env.office]\npool = \"10.9.0.0/24\"\n");
  auto rm = decodeCommand(*encodeCommand(Command{EnvRemove{"office", true}}));
  ASSERT_TRUE(rm && std::get_if<EnvRemove>(&*rm));
  EXPECT_TRUE(std::get_if<EnvRemove>(&*rm)->force);
  Reply r;
  EnvInfo e;
  e.name = "office";
  e.uplink = "wireguard";
  e.carrier = "host";
  e.dns = {"192.168.11.53"};
  e.kill_switch = true;
  e.cells = 2;
  r.envs.push_back(e);
  auto back = decodeReply(encodeReply(r));
  ASSERT_TRUE(back) << back.error().message;
  ASSERT_EQ(back->envs.size(), 1u);
  EXPECT_EQ(back->envs[0].uplink, "wireguard");
  EXPECT_EQ(back->envs[0].dns, std::vector<std::string>{"192.168.11.53"});
  EXPECT_TRUE(back->envs[0].kill_switch);
  EXPECT_EQ(back->envs[0].cells, 2u);
}

TEST(Commands, VmCellsAndProcessNotesRoundTrip) {
  CellCreate create;
  create.app = "browser";
  create.backend = "vm";
  create.vm_accel = "tcg";
  auto cmd = decodeCommand(*encodeCommand(Command{create}));
  ASSERT_TRUE(cmd) << cmd.error().message;
  const auto* got = std::get_if<CellCreate>(&*cmd);
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(got->backend, "vm");
  EXPECT_EQ(got->vm_accel, "tcg");

  Reply r;
  CellInfo c;
  c.id = 3;
  c.backend = "vm";
  c.vm_accel = "kvm";
  c.vm_accel_note = "";
  c.vm_may_fall_back = true;
  c.mtu = 1420;
  r.cells.push_back(c);
  LogEntry e;
  e.id = 1;
  e.process.note = "not visible (VM cell)";
  r.log.push_back(e);
  PromptInfo q;
  q.id = 2;
  q.process = e.process;
  r.prompts.push_back(q);
  auto back = decodeReply(encodeReply(r));
  ASSERT_TRUE(back) << back.error().message;
  ASSERT_EQ(back->cells.size(), 1u);
  EXPECT_EQ(back->cells[0].backend, "vm");
  EXPECT_EQ(back->cells[0].vm_accel, "kvm");
  EXPECT_TRUE(back->cells[0].vm_may_fall_back);
  EXPECT_EQ(back->cells[0].mtu, 1420u);
  ASSERT_EQ(back->log.size(), 1u);
  EXPECT_EQ(back->log[0].process.pid, 0u);
  EXPECT_EQ(back->log[0].process.note, "not visible (VM cell)");
  ASSERT_EQ(back->prompts.size(), 1u);
  EXPECT_EQ(back->prompts[0].process.note, "not visible (VM cell)");

  // From a daemon (or a client) older than these keys: a namespace cell, no note.
  auto old = decodeReply(R"({"ok":true,"cells":[{"id":3}],"log":[{"id":1,"process":{"pid":0}}]})");
  ASSERT_TRUE(old) << old.error().message;
  ASSERT_EQ(old->cells.size(), 1u);
  EXPECT_EQ(old->cells[0].backend, "netns");
  EXPECT_EQ(old->cells[0].vm_accel, "");
  EXPECT_FALSE(old->cells[0].vm_may_fall_back);
  EXPECT_EQ(old->cells[0].mtu, 0u);
  ASSERT_EQ(old->log.size(), 1u);
  EXPECT_EQ(old->log[0].process.note, "");
  auto old_create = decodeCommand(R"({"cmd":"cell.create","app":"browser"})");
  ASSERT_TRUE(old_create) << old_create.error().message;
  ASSERT_NE(std::get_if<CellCreate>(&*old_create), nullptr);
  EXPECT_EQ(std::get_if<CellCreate>(&*old_create)->backend, "netns");

  auto fb = decodeCommand(*encodeCommand(Command{CellVmFallback{7, "qemu: failed to set MSR 0x10a"}}));
  ASSERT_TRUE(fb) << fb.error().message;
  const auto* f = std::get_if<CellVmFallback>(&*fb);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->id, 7u);
  EXPECT_EQ(f->why, "qemu: failed to set MSR 0x10a");
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

TEST(Commands, ArgvThatIsNotUtf8StillEncodes) {
  // A process in a cell chooses its own argv: bytes that are not UTF-8 must not make the reply
  // (the log, the open questions, the UI's events) fail to encode.
  LogEntry e;
  e.id = 1;
  e.process.pid = 7;
  e.process.exe = "/usr/bin/curl";
  e.process.cmdline = "curl \xff\xfe http://x/";
  PromptInfo q;
  q.id = 2;
  q.process = e.process;
  Reply r;
  r.log.push_back(e);
  r.prompts.push_back(q);
  std::string text;
  ASSERT_NO_THROW(text = encodeReply(r));
  auto back = decodeReply(text);
  ASSERT_TRUE(back) << back.error().message;
  ASSERT_EQ(back->log.size(), 1u);
  EXPECT_EQ(back->log[0].process.cmdline, "curl \xef\xbf\xbd\xef\xbf\xbd http://x/");  // U+FFFD each
  ASSERT_EQ(back->prompts.size(), 1u);
  EXPECT_EQ(back->prompts[0].process.cmdline, back->log[0].process.cmdline);
  EXPECT_NO_THROW(logEntryJsonText(e));
  EXPECT_NO_THROW(promptInfoJsonText(q));
}

}  // namespace
}  // namespace cw::api
