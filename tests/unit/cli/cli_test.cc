// The terminal's answer lines and questions, `cellwall log`'s rows and the desktop
// notification's text.
#include <gtest/gtest.h>

#include "cli/notify_cmd.h"
#include "cli/prompt_cmd.h"
#include "cli/rules_cmd.h"

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

// `rules add --connections 0` is written out, for the daemon's parser to refuse as it refuses a
// policy file's `connections = 0`; leaving the flag out is what means "no limit".
TEST(RuleFlags, ConnectionsZeroIsWrittenNotDropped) {
  RuleFlags f;
  EXPECT_EQ(ruleTextFromFlags(f).find("connections"), std::string::npos);
  f.connections = 0;
  EXPECT_NE(ruleTextFromFlags(f).find("connections = 0\n"), std::string::npos) << ruleTextFromFlags(f);
  f.connections = 5;
  EXPECT_NE(ruleTextFromFlags(f).find("connections = 5\n"), std::string::npos) << ruleTextFromFlags(f);
}

TEST(RulesCounters, HumanSizesAndAnAlignedTable) {
  EXPECT_EQ(humanBytes(0), "0 B");
  EXPECT_EQ(humanBytes(999), "999 B");
  EXPECT_EQ(humanBytes(1000), "1.0 kB");
  EXPECT_EQ(humanBytes(1234567), "1.2 MB");
  EXPECT_EQ(humanBytes(999999), "1.0 MB");  // never "1000.0 kB"
  EXPECT_EQ(humanCount(42), "42");
  EXPECT_EQ(humanCount(1500), "1.5 k");
  api::RuleInfo r;
  r.id = 7;
  r.app = "web";
  r.action = "allow";
  r.text = "[[rule]]\naction = \"allow\"\nto = [\"192.0.2.10\"]\n";
  api::RuleInfo quiet = r;
  quiet.id = 8;
  api::RuleCounters c{"web", 7, "rule", 10, 1200, 150, 204800};
  api::RuleCounters dflt{"web", 0, "rule", 1, 60, 0, 0};
  const std::string t = rulesCountersTable({r, quiet}, {c, dflt});
  // Header, rule 7, rule 8 (nothing counted: zeros), the default's row.
  std::vector<std::string> lines;
  for (std::size_t at = 0, nl; (nl = t.find('\n', at)) != std::string::npos; at = nl + 1) lines.push_back(t.substr(at, nl - at));
  ASSERT_EQ(lines.size(), 4u) << t;
  EXPECT_NE(lines[1].find("1.2 kB"), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find("204.8 kB"), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find("to = [\"192.0.2.10\"]"), std::string::npos) << lines[1];
  EXPECT_NE(lines[2].find("0 B"), std::string::npos) << lines[2];
  EXPECT_NE(lines[3].find("(default)"), std::string::npos) << lines[3];
  // Aligned: every row's match starts where the header's MATCH does.
  const auto col = lines[0].find("MATCH");
  EXPECT_EQ(lines[1].find("to = "), col) << t;
  EXPECT_EQ(lines[3].find("no rule matched"), col) << t;
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


api::ProcessRef curlProcess() {
  api::ProcessRef p;
  p.pid = 4242;
  p.uid = 1000;
  p.user = "alice";
  p.exe = "/usr/bin/curl";
  p.cmdline = "curl -s http://example.org/";
  return p;
}

TEST(Notification, SaysWhichProcessAsks) {
  api::PromptInfo p;
  p.app = "browser";
  p.proto = "tcp";
  p.remote_ip = "192.0.2.7";
  p.remote_port = 443;
  p.timeout_action = "deny";
  p.process = curlProcess();
  p.process.cmdline = "curl -s http://example.org/?a=1&b=<2>";  // argv is not markup either
  auto t = notificationText(p);
  EXPECT_EQ(t.summary, "curl in browser wants to connect");
  EXPECT_NE(t.body.find("\ncurl (pid 4242, user alice): /usr/bin/curl -s http://example.org/?a=1&amp;b=&lt;2&gt;"),
            std::string::npos)
      << t.body;
  p.process = {};
  t = notificationText(p);
  EXPECT_EQ(t.summary, "browser wants to connect");
  EXPECT_EQ(t.body.find("pid"), std::string::npos) << t.body;
  EXPECT_EQ(t.body.find("process"), std::string::npos) << t.body;
  p.process.note = "not visible (VM cell)";
  t = notificationText(p);
  EXPECT_EQ(t.summary, "browser wants to connect");
  EXPECT_NE(t.body.find("tcp 192.0.2.7 port 443\nprocess: not visible (VM cell)\n"), std::string::npos) << t.body;
}

api::PromptInfo question() {
  api::PromptInfo p;
  p.id = 3;
  p.app = "firefox";
  p.cell = 2;
  p.proto = "tcp";
  p.remote_ip = "93.184.216.34";
  p.remote_port = 443;
  p.names = "example.org";
  p.timeout_in_ms = 58500;
  p.timeout_action = "deny";
  p.connections = 1;
  return p;
}

TEST(Question, UnattributedIsOneLine) {
  EXPECT_EQ(questionText(question()),
            "#3 firefox (cell 2) wants tcp 93.184.216.34:443 (example.org); 1 connection(s) held; in 58 s: deny\n");
}

TEST(Question, AttributedSaysWhichProcessAsksOnTheNextLine) {
  api::PromptInfo p = question();
  p.process = curlProcess();
  EXPECT_EQ(questionText(p),
            "#3 firefox (cell 2) wants tcp 93.184.216.34:443 (example.org); 1 connection(s) held; in 58 s: deny\n"
            "  asked by curl (pid 4242, user alice): /usr/bin/curl -s http://example.org/\n");
  p.process.cmdline = "curl " + std::string(5000, 'x');
  const std::string t = questionText(p);
  EXPECT_LT(t.size(), 600u);
  EXPECT_NE(t.find("...\n"), std::string::npos);
}

TEST(Question, VmCellSaysItsProcessIsNotVisible) {
  api::PromptInfo p = question();
  p.process.note = "not visible (VM cell)";
  EXPECT_EQ(questionText(p),
            "#3 firefox (cell 2) wants tcp 93.184.216.34:443 (example.org); 1 connection(s) held; in 58 s: deny\n"
            "  process: not visible (VM cell)\n");
}

api::LogEntry logEntry() {
  api::LogEntry e;
  e.id = 9;
  e.time_ms = 0;  // shown as "-": no time zone in the test
  e.app = "web";
  e.cell = 4;
  e.proto = "tcp";
  e.remote_ip = "192.0.2.7";
  e.remote_port = 8080;
  e.names = "test.example";
  e.verdict = "allow";
  e.rule_id = 12;
  e.packets = 5;
  e.bytes = 320;
  return e;
}

TEST(LogLine, UnattributedRowEndsWithTheCounters) {
  const std::string row = logLine(logEntry());
  EXPECT_EQ(row.substr(row.size() - 6), " 5/320") << row;
  EXPECT_EQ(row.find("pid"), std::string::npos);
  EXPECT_NE(row.find("192.0.2.7:8080"), std::string::npos);
  EXPECT_NE(row.find("test.example"), std::string::npos);
}

// The RULE column names what decided: a rule's id, a script (its verdict's reason says which),
// or the app's default; the JSON form has the same as decided_by.
TEST(LogLine, RuleColumnNamesTheRuleTheScriptOrTheDefault) {
  struct Case {
    std::uint32_t rule_id;
    const char* reason;
    const char* shown;
  };
  const Case cases[] = {
      {12, "policy_rule", "12"},
      {0, "policy_default", "default"},
      {0, "script:telnet_block", "script:telnet_block"},
      {0, "script:", "default"},  // no name: nothing to show but the default
      {0, "prompt_answer", "default"},
  };
  for (const auto& c : cases) {
    api::LogEntry e = logEntry();
    e.rule_id = c.rule_id;
    e.reason = c.reason;
    const std::string row = logLine(e);
    EXPECT_NE(row.find(" allow   " + std::string(c.shown) + " "), std::string::npos) << c.reason << "\n" << row;
    EXPECT_EQ(api::decidedBy(e), c.shown);
    EXPECT_NE(api::logEntryJsonText(e).find("\"decided_by\":\"" + std::string(c.shown) + "\""), std::string::npos)
        << api::logEntryJsonText(e);
  }
}

TEST(LogLine, AttributedRowEndsWithItsProcessUnderTheHeader) {
  api::LogEntry e = logEntry();
  e.process = curlProcess();
  const std::string row = logLine(e);
  const std::string header = logHeader();
  const std::string process = "curl (pid 4242, user alice): /usr/bin/curl -s http://example.org/";
  ASSERT_GE(row.size(), process.size());
  EXPECT_EQ(row.substr(row.size() - process.size()), process) << row;
  // The column starts where its header does, and the counters keep theirs.
  EXPECT_EQ(row.find(process), header.find("PROCESS")) << header << "\n" << row;
  EXPECT_EQ(row.find(" 5/320 "), header.find(" PACKETS/BYTES")) << header << "\n" << row;
  // One row per connection whatever its argv holds, and a long one is cut.
  e.process.cmdline = "curl \nallow evil " + std::string(1000, 'y');
  const std::string cut = logLine(e);
  EXPECT_EQ(cut.find('\n'), std::string::npos);
  EXPECT_LT(cut.size(), header.find("PROCESS") + 30 + kLogCommandMax);
  EXPECT_EQ(cut.substr(cut.size() - 3), "...");
}

TEST(LogLine, VmCellRowSaysItsProcessIsNotVisibleUnderTheHeader) {
  api::LogEntry e = logEntry();
  e.process.note = "not visible (VM cell)";
  const std::string row = logLine(e);
  const std::string header = logHeader();
  EXPECT_EQ(row.find("not visible (VM cell)"), header.find("PROCESS")) << header << "\n" << row;
  EXPECT_EQ(row.substr(row.size() - 22), " not visible (VM cell)") << row;
}

TEST(LogLine, LongNamesAreNotCut) {
  api::LogEntry e = logEntry();
  e.names.clear();
  for (int i = 0; i < 40; ++i) e.names += "host" + std::to_string(i) + ".cdn.example.net,";
  e.names += "last.example";
  EXPECT_NE(logLine(e).find(",last.example "), std::string::npos);
}

}  // namespace
}  // namespace cw::cli
