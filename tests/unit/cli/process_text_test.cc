// The process behind a connection as the command line shows it: one form for the log, the
// terminal's questions and notifications; safe to print whatever the process put in its argv.
#include "cli/process_text.h"

#include <gtest/gtest.h>

namespace cw::cli {
namespace {

api::ProcessRef curl() {
  api::ProcessRef p;
  p.pid = 1234;
  p.uid = 1000;
  p.user = "alice";
  p.exe = "/usr/bin/curl";
  p.cmdline = "curl -s http://example.org/";
  return p;
}

TEST(ProcessText, NotAttributedSaysNothing) {
  EXPECT_EQ(processText(api::ProcessRef{}), "");
  EXPECT_EQ(processName(api::ProcessRef{}), "");
}

TEST(ProcessText, NoProcessSaysWhyWhenKnown) {
  api::ProcessRef vm;
  vm.note = "not visible (VM cell)";
  EXPECT_EQ(processText(vm), "not visible (VM cell)");
  EXPECT_EQ(processText(vm, 5), "not visible (VM cell)");  // the bound is the command's
  EXPECT_EQ(processName(vm), "");                            // nothing to name a title after
  vm.note = "not \x1b[2Jvisible\n";
  EXPECT_EQ(processText(vm), "not \\x1b[2Jvisible\\x0a");
  // A note is for pid 0 only: a process is shown as itself.
  api::ProcessRef p = curl();
  p.note = "not visible (VM cell)";
  EXPECT_EQ(processText(p), "curl (pid 1234, user alice): /usr/bin/curl -s http://example.org/");
}

struct Case {
  const char* what;
  api::ProcessRef process;
  std::string name, text;
};

TEST(ProcessText, NameWhoAndCommand) {
  auto with = [](auto change) {
    api::ProcessRef p = curl();
    change(p);
    return p;
  };
  const Case cases[] = {
      {"argv[0] by PATH: the full path stands in for it", curl(), "curl",
       "curl (pid 1234, user alice): /usr/bin/curl -s http://example.org/"},
      {"argv[0] is the path already", with([](auto& p) { p.cmdline = "/usr/bin/curl -s x"; }), "curl",
       "curl (pid 1234, user alice): /usr/bin/curl -s x"},
      {"no arguments", with([](auto& p) { p.cmdline = "curl"; }), "curl", "curl (pid 1234, user alice): /usr/bin/curl"},
      {"a multi-call binary: both the exe and what argv says",
       with([](auto& p) {
         p.exe = "/bin/busybox";
         p.cmdline = "wget -q http://example.org/";
       }),
       "busybox", "busybox (pid 1234, user alice): /bin/busybox (argv: wget -q http://example.org/)"},
      {"a uid with no name", with([](auto& p) { p.user.clear(); }), "curl",
       "curl (pid 1234, uid 1000): /usr/bin/curl -s http://example.org/"},
      {"gone before it was read: the kernel's name only",
       with([](auto& p) {
         p.exe = "[curl]";
         p.cmdline.clear();
         p.exited = true;
       }),
       "[curl]", "[curl] (pid 1234, user alice, exited)"},
      {"a deleted binary says so; its name is still its name",
       with([](auto& p) { p.exe = "/opt/app/agent (deleted)"; p.cmdline = "agent --up"; }), "agent",
       "agent (pid 1234, user alice): /opt/app/agent (deleted) --up"},
      {"exe unreadable: argv is all there is",
       with([](auto& p) {
         p.exe.clear();
         p.cmdline = "/usr/sbin/ntpd -g";
       }),
       "ntpd", "ntpd (pid 1234, user alice): /usr/sbin/ntpd -g"},
      {"no argv (a zombie read late)", with([](auto& p) { p.cmdline.clear(); }), "curl",
       "curl (pid 1234, user alice): /usr/bin/curl"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(processName(c.process), c.name) << c.what;
    EXPECT_EQ(processText(c.process), c.text) << c.what;
  }
}

TEST(ProcessText, TerminalControlsAndBidiAreShownNotObeyed) {
  api::ProcessRef p = curl();
  // An escape sequence that would clear the screen, a newline that would fake another log row,
  // a right-to-left override that would reverse the rest, a C1 CSI, and a byte that is not UTF-8.
  p.cmdline = "curl \x1b[2Jx\nfake \xe2\x80\xae" "evil \xc2\x9b" "1m \xff caf\xc3\xa9";
  const std::string t = processText(p);
  EXPECT_EQ(t, "curl (pid 1234, user alice): /usr/bin/curl \\x1b[2Jx\\x0afake \\u{202e}evil \\u{009b}1m \\xff caf\xc3\xa9");
  for (char ch : t) EXPECT_FALSE(static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) << t;
  EXPECT_EQ(printable("a\tb"), "a\\x09b");
  EXPECT_EQ(printable("\xed\xa0\x80"), "\\xed\\xa0\\x80");  // a UTF-16 surrogate is not UTF-8
  EXPECT_EQ(printable("\xc0\xaf"), "\\xc0\\xaf");           // nor is an overlong '/'
  EXPECT_EQ(printable("\xe6\x97\xa5\xf0\x9f\x98\x80"), "\xe6\x97\xa5\xf0\x9f\x98\x80");
}

TEST(ProcessText, LongCommandLinesAreCutOnWholeCharacters) {
  api::ProcessRef p = curl();
  p.cmdline = "curl " + std::string(500, 'a');
  std::string t = processText(p, 40);
  const std::string head = "curl (pid 1234, user alice): ";
  ASSERT_EQ(t.substr(0, head.size()), head);
  EXPECT_EQ(t.size(), head.size() + 40) << t;
  EXPECT_EQ(t.substr(t.size() - 3), "...");
  // Never half an escape or half a character.
  p.cmdline = "curl " + std::string(30, 'b') + "\x1b\x1b\x1b\x1b";
  t = processText(p, 40);
  EXPECT_EQ(t, head + "/usr/bin/curl " + std::string(23, 'b') + "...") << t;
  p.cmdline = "curl " + std::string(21, 'b') + "\xc3\xa9\xc3\xa9";
  t = processText(p, 40);
  EXPECT_EQ(t, head + "/usr/bin/curl " + std::string(21, 'b') + "\xc3\xa9...") << t;
  // Short enough: whole, no marker.
  EXPECT_EQ(processText(curl(), 200), "curl (pid 1234, user alice): /usr/bin/curl -s http://example.org/");
}

}  // namespace
}  // namespace cw::cli
