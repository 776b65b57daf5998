// Which accelerator a VM cell runs under, and the record of KVM failing on this host
// (vm/accel.h).
#include "vm/accel.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

namespace cw::vm {
namespace {

namespace fs = std::filesystem;

const AccelChoice kKvmWorks{Accel::kKvm, ""};
const AccelChoice kNoKvm{Accel::kTcg, "/dev/kvm: No such file or directory"};
const fs::path kRecord = "/var/lib/cellwall/vm/kvm-unusable";

TEST(Accel, ModesParseAndPrint) {
  for (auto m : {AccelMode::kAuto, AccelMode::kKvm, AccelMode::kTcg}) EXPECT_EQ(parseAccelMode(accelModeName(m)), m);
  EXPECT_FALSE(parseAccelMode("hvf"));
  EXPECT_FALSE(parseAccelMode(""));
}

TEST(Accel, AutoUsesKvmWhenItWorksAndMayFallBack) {
  auto d = decideAccel(AccelMode::kAuto, kKvmWorks, std::nullopt, kRecord);
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->accel, Accel::kKvm);
  EXPECT_TRUE(d->may_fall_back);
  EXPECT_EQ(d->note, "");
}

TEST(Accel, AutoGoesStraightToTcgWhenKvmFailedHereBefore) {
  auto d = decideAccel(AccelMode::kAuto, kKvmWorks, std::string("failed to set MSR 0x10a"), kRecord);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->accel, Accel::kTcg);
  EXPECT_FALSE(d->may_fall_back);
  EXPECT_NE(d->note.find("failed to set MSR 0x10a"), std::string::npos) << d->note;
  EXPECT_NE(d->note.find(kRecord.string()), std::string::npos) << d->note;
  EXPECT_NE(d->note.find("--vm-accel kvm"), std::string::npos) << d->note;
}

TEST(Accel, AutoWithoutKvmSaysWhy) {
  auto d = decideAccel(AccelMode::kAuto, kNoKvm, std::nullopt, kRecord);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->accel, Accel::kTcg);
  EXPECT_FALSE(d->may_fall_back);
  EXPECT_NE(d->note.find("No such file"), std::string::npos) << d->note;
}

TEST(Accel, KvmTriesKvmWhateverTheRecordSaysAndNeverFallsBack) {
  auto d = decideAccel(AccelMode::kKvm, kKvmWorks, std::string("failed before"), kRecord);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->accel, Accel::kKvm);
  EXPECT_FALSE(d->may_fall_back);
  auto none = decideAccel(AccelMode::kKvm, kNoKvm, std::nullopt, kRecord);
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find("KVM is not usable here (/dev/kvm: No such file or directory)"),
            std::string::npos) << none.error().message;
  EXPECT_NE(none.error().message.find("--vm-accel tcg"), std::string::npos);
}

TEST(Accel, TcgNeverTriesKvm) {
  auto d = decideAccel(AccelMode::kTcg, kKvmWorks, std::nullopt, kRecord);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->accel, Accel::kTcg);
  EXPECT_FALSE(d->may_fall_back);
}

TEST(Accel, TheRecordHoldsForItsKeyOnly) {
  char tmpl[] = "/tmp/cw-accel-test-XXXXXX";
  const fs::path dir = ::mkdtemp(tmpl);
  const fs::path file = kvmRecordPath(dir / "state");
  EXPECT_EQ(file, dir / "state" / "vm" / "kvm-unusable");
  const std::string key = kvmHostKey("/bin/sh");
  EXPECT_NE(key.find("qemu /bin/sh size "), std::string::npos) << key;
  EXPECT_NE(key.find("; kernel "), std::string::npos) << key;
  EXPECT_FALSE(readKvmRecord(file, key));
  ASSERT_TRUE(writeKvmRecord(file, key, "qemu: error: failed to set MSR 0x10a\nAssertion failed"));
  EXPECT_EQ(readKvmRecord(file, key), "qemu: error: failed to set MSR 0x10a Assertion failed");
  // Another QEMU (or kernel) is another key: the record says nothing about it.
  EXPECT_FALSE(readKvmRecord(file, kvmHostKey("/bin/true")));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace cw::vm
