#include "web/token.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

namespace cw::web {
namespace {

TEST(Token, IsSixtyFourHexCharactersAndNewEachTime) {
  auto a = newToken(), b = newToken();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->size(), 64u);
  EXPECT_EQ(a->find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(*a, *b);
}

TEST(Token, ComparesExactly) {
  EXPECT_TRUE(tokenEquals("abcd", "abcd"));
  EXPECT_FALSE(tokenEquals("abce", "abcd"));
  EXPECT_FALSE(tokenEquals("abc", "abcd"));
  EXPECT_FALSE(tokenEquals("abcde", "abcd"));
  EXPECT_FALSE(tokenEquals("", ""));  // no token set opens nothing
}

TEST(Token, FileIsOwnerOnlyAndNeverWrittenThroughALink) {
  char tmpl[] = "/tmp/cw-token-test-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  const std::string victim = dir + "/victim", file = dir + "/ui-token";
  { std::ofstream(victim) << "keep me\n"; }
  ASSERT_EQ(::symlink(victim.c_str(), file.c_str()), 0);
  ::umask(022);
  ASSERT_TRUE(writeTokenFile(file, "00ff"));
  struct stat st {};
  ASSERT_EQ(::lstat(file.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string got, kept;
  std::getline(std::ifstream(file), got);
  std::getline(std::ifstream(victim), kept);
  EXPECT_EQ(got, "00ff");
  EXPECT_EQ(kept, "keep me");
  ::unlink(file.c_str());
  ::unlink(victim.c_str());
  ::rmdir(dir.c_str());
}

}  // namespace
}  // namespace cw::web
