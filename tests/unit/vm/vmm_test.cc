// The VMM's command line (vm/vmm.h) and the choice of guest kernel.
#include "vm/vmm.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

namespace cw::vm {
namespace {

namespace fs = std::filesystem;

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& a : v) s += a + " ";
  return s;
}

TEST(QemuMicrovm, DevicesComeFromInheritedDescriptors) {
  VmSpec s;
  s.memory_mib = 192;
  s.cpus = 2;
  s.mac = "02:c3:0a:c8:00:05";
  auto argv = QemuMicrovm().command(s);
  ASSERT_TRUE(argv);
  std::string a = joined(*argv);
  EXPECT_EQ(argv->front(), "qemu-system-x86_64");
  EXPECT_NE(a.find("-M microvm"), std::string::npos);
  EXPECT_NE(a.find("-m 192 -smp 2"), std::string::npos);
  EXPECT_NE(a.find("-netdev tap,id=net,fd=3"), std::string::npos);
  EXPECT_NE(a.find("socket,id=ctl,fd=4"), std::string::npos);
  EXPECT_NE(a.find("socket,id=console,fd=5"), std::string::npos);
  EXPECT_NE(a.find("-kernel /proc/self/fd/6"), std::string::npos);
  EXPECT_NE(a.find("-initrd /proc/self/fd/7"), std::string::npos);
  EXPECT_NE(a.find("mac=02:c3:0a:c8:00:05"), std::string::npos);
  EXPECT_NE(a.find("readonly=on"), std::string::npos);
  EXPECT_NE(a.find("-sandbox on"), std::string::npos);
  // Nothing the VMM would open on its own: no user config, default devices or display.
  for (const char* flag : {"-nodefaults", "-no-user-config", "-nographic", "-no-reboot"})
    EXPECT_NE(std::find(argv->begin(), argv->end(), flag), argv->end()) << flag;
}

TEST(QemuMicrovm, AcceleratorDecidesCpuAndClock) {
  VmSpec s;
  s.accel = Accel::kKvm;
  std::string kvm = joined(*QemuMicrovm().command(s));
  EXPECT_NE(kvm.find("-accel kvm -cpu host"), std::string::npos);
  EXPECT_EQ(kvm.find("tsc_early_khz"), std::string::npos);
  s.accel = Accel::kTcg;
  std::string tcg = joined(*QemuMicrovm().command(s));
  EXPECT_NE(tcg.find("-accel tcg,tb-size=64"), std::string::npos);
  // The guest cannot calibrate its TSC under emulation: the host's rate is on its command line.
  EXPECT_GT(hostTscKhz(), 100000u);  // every x86-64 host's TSC runs at 100 MHz or more
  EXPECT_NE(tcg.find("tsc_early_khz="), std::string::npos);
}

TEST(QemuMicrovm, RefusesResourcesOutOfRange) {
  VmSpec s;
  s.memory_mib = 32;
  EXPECT_FALSE(QemuMicrovm().command(s));
  s.memory_mib = 256;
  s.cpus = 0;
  EXPECT_FALSE(QemuMicrovm().command(s));
}

TEST(DetectAccel, MissingDeviceMeansEmulationAndSaysWhy) {
  auto c = detectAccel("/nonexistent/kvm");
  EXPECT_EQ(c.accel, Accel::kTcg);
  EXPECT_NE(c.why.find("/nonexistent/kvm"), std::string::npos);
}

class KernelDir : public ::testing::Test {
 protected:
  void SetUp() override {
    root = fs::temp_directory_path() / ("cw-vmm-test-" + std::to_string(::getpid()));
    fs::create_directories(root / "boot");
  }
  void TearDown() override { fs::remove_all(root); }
  void kernel(const std::string& version, bool with_9p) {
    std::ofstream(root / "boot" / ("vmlinuz-" + version)) << "k";
    auto mods = root / "modules" / version / "kernel";
    fs::create_directories(mods / "drivers/net");
    std::ofstream(mods / "drivers/net/virtio_net.ko") << "m";
    if (with_9p) {
      fs::create_directories(mods / "fs/9p");
      std::ofstream(mods / "fs/9p/9p.ko") << "m";
    }
  }
  Expected<GuestKernel> find() { return findGuestKernel((root / "boot").string(), (root / "modules").string()); }
  fs::path root;
};

TEST_F(KernelDir, PrefersTheNewestGenericKernelWith9p) {
  kernel("6.1.0-9-amd64", true);
  kernel("6.1.0-56-amd64", true);
  kernel("6.1.0-60-amd64", false);       // newer, but no 9p
  kernel("6.12.1+deb12-rt-amd64", true);  // realtime flavour
  kernel("6.1.0-70-cloud-amd64", true);
  auto k = find();
  ASSERT_TRUE(k) << k.error().message;
  EXPECT_EQ(k->version, "6.1.0-56-amd64");
  EXPECT_EQ(k->image, (root / "boot" / "vmlinuz-6.1.0-56-amd64").string());
}

TEST_F(KernelDir, TakesAnotherFlavourWhenThereIsNoGenericOne) {
  kernel("6.12.1+deb12-rt-amd64", true);
  auto k = find();
  ASSERT_TRUE(k);
  EXPECT_EQ(k->version, "6.12.1+deb12-rt-amd64");
}

TEST_F(KernelDir, NoUsableKernelSaysWhatToInstall) {
  kernel("6.1.0-56-amd64", false);
  auto k = find();
  ASSERT_FALSE(k);
  EXPECT_NE(k.error().message.find("linux-image-amd64"), std::string::npos);
}

}  // namespace
}  // namespace cw::vm
