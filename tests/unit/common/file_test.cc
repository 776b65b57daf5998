#include "common/file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace fs = std::filesystem;

namespace cw {
namespace {

class FileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "cw-test-file-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  static mode_t modeOf(const fs::path& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
    return st.st_mode & 07777;
  }
  fs::path dir_;
};

TEST_F(FileTest, WritesAndReplacesWholeLeavingNoTemporaryFile) {
  const fs::path p = dir_ / "state";
  ASSERT_TRUE(writeFileAtomically(p, "first\n"));
  EXPECT_EQ(*readTextFile(p), "first\n");
  EXPECT_EQ(modeOf(p), 0644u);
  ASSERT_TRUE(writeFileAtomically(p, std::string("second\0line\n", 12)));
  EXPECT_EQ(*readTextFile(p), std::string("second\0line\n", 12));
  ASSERT_TRUE(writeFileAtomically(p, ""));
  EXPECT_EQ(*readTextFile(p), "");
  EXPECT_FALSE(fs::exists(dir_ / "state.tmp"));
}

TEST_F(FileTest, ASecretGetsItsModeEvenOverALeftoverTemporaryFile) {
  const fs::path p = dir_ / "key.conf";
  std::ofstream(dir_ / "key.conf.tmp") << "left over by a crash\n";
  ::chmod((dir_ / "key.conf.tmp").c_str(), 0666);
  ASSERT_TRUE(writeFileAtomically(p, "PrivateKey = x\n", fs::perms::owner_read | fs::perms::owner_write));
  EXPECT_EQ(modeOf(p), 0600u);
  EXPECT_EQ(*readTextFile(p), "PrivateKey = x\n");

  // A leftover temporary name that is a link: removed, never written through.
  std::ofstream(dir_ / "victim") << "untouched\n";
  fs::create_symlink(dir_ / "victim", dir_ / "key.conf.tmp");
  ASSERT_TRUE(writeFileAtomically(p, "PrivateKey = y\n", fs::perms::owner_read | fs::perms::owner_write));
  EXPECT_EQ(*readTextFile(dir_ / "victim"), "untouched\n");
  EXPECT_EQ(*readTextFile(p), "PrivateKey = y\n");
  EXPECT_FALSE(fs::is_symlink(p));
}

TEST_F(FileTest, SaysWhichFileItCouldNotWrite) {
  const fs::path p = dir_ / "missing" / "state";
  auto r = writeFileAtomically(p, "x");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find((dir_ / "missing" / "state.tmp").string()), std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("No such file or directory"), std::string::npos) << r.error().message;

  // The target is a directory: the rename fails, the old one stays, no temporary file is left.
  fs::create_directories(dir_ / "adir" / "inside");
  auto d = writeFileAtomically(dir_ / "adir", "x");
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().message.find("cannot write " + (dir_ / "adir").string() + ":"), std::string::npos)
      << d.error().message;
  EXPECT_TRUE(fs::is_directory(dir_ / "adir" / "inside"));
  EXPECT_FALSE(fs::exists(dir_ / "adir.tmp"));
}

}  // namespace
}  // namespace cw
