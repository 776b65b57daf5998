#include "vm/vmm.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <x86intrin.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <chrono>
#include <filesystem>
#include <thread>

#include "common/file.h"

namespace cw::vm {

namespace fs = std::filesystem;

const char* accelName(Accel a) { return a == Accel::kKvm ? "kvm" : "tcg"; }

AccelChoice detectAccel(const std::string& dev) {
  int fd = ::open(dev.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return {Accel::kTcg, dev + ": " + std::strerror(errno)};
  AccelChoice c{Accel::kTcg, ""};
  int version = ::ioctl(fd, KVM_GET_API_VERSION, 0);
  if (version != KVM_API_VERSION) {
    c.why = dev + ": KVM API version " + std::to_string(version) + ", not " + std::to_string(KVM_API_VERSION);
  } else if (int vm = ::ioctl(fd, KVM_CREATE_VM, 0); vm < 0) {
    c.why = dev + ": cannot create a VM: " + std::strerror(errno);
  } else {
    ::close(vm);
    c.accel = Accel::kKvm;
  }
  ::close(fd);
  return c;
}

namespace {

// Under TCG the guest's TSC is the host's, and the guest cannot measure it: microvm has no
// HPET or ACPI timer, and calibrating against the PIT fails whenever emulation runs late (a
// busy host), which leaves the guest with no clock and hangs its boot. So the host measures it
// and tells the guest.
std::string tscArgs(Accel accel) {
  if (accel != Accel::kTcg) return "";
  auto khz = hostTscKhz();
  return khz == 0 ? "" : " tsc_early_khz=" + std::to_string(khz);
}

}  // namespace

std::uint64_t hostTscKhz() {
  using Clock = std::chrono::steady_clock;
  unsigned aux = 0;
  auto t0 = Clock::now();
  std::uint64_t c0 = __rdtscp(&aux);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto t1 = Clock::now();
  std::uint64_t c1 = __rdtscp(&aux);
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count();
  if (ns <= 0 || c1 <= c0) return 0;
  return (c1 - c0) * 1000000 / static_cast<std::uint64_t>(ns);
}

Expected<std::vector<std::string>> QemuMicrovm::command(const VmSpec& s) const {
  if (s.memory_mib < 64 || s.memory_mib > 65536) return fail("VM memory must be 64 to 65536 MiB");
  if (s.cpus < 1 || s.cpus > 64) return fail("VM CPUs must be 1 to 64");
  auto fd = [](int n) { return std::to_string(n); };
  std::vector<std::string> a{binary_, "-M", "microvm,x-option-roms=off"};
  // TCG's translation cache is 1 GiB by default, and it is resident: 64 MiB is plenty for
  // one program.
  if (s.accel == Accel::kKvm) {
    a.insert(a.end(), {"-accel", "kvm", "-cpu", "host"});
  } else {
    a.insert(a.end(), {"-accel", "tcg,tb-size=64"});
  }
  a.insert(a.end(), {"-m", std::to_string(s.memory_mib), "-smp", std::to_string(s.cpus), "-nodefaults",
                     "-no-user-config", "-nographic", "-no-reboot",
                     // seccomp: no new privileges, no spawning, no obsolete system calls.
                     "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
                     "-kernel", "/proc/self/fd/" + fd(s.fds.kernel), "-initrd", "/proc/self/fd/" + fd(s.fds.initrd),
                     "-append",
                     "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init" + tscArgs(s.accel) +
                         (s.kernel_args.empty() ? "" : " " + s.kernel_args),
                     "-chardev", "socket,id=console,fd=" + fd(s.fds.console), "-serial", "chardev:console",
                     "-device", "virtio-serial-device", "-chardev", "socket,id=ctl,fd=" + fd(s.fds.control),
                     "-device", "virtserialport,chardev=ctl,name=cw.ctl",
                     // The host's root, read-only; 9p cannot hand out its file handles across
                     // devices without remapping inode numbers.
                     "-fsdev", "local,id=root,path=/,security_model=none,readonly=on,multidevs=remap",
                     "-device", "virtio-9p-device,fsdev=root,mount_tag=hostroot",
                     "-netdev", "tap,id=net,fd=" + fd(s.fds.tap), "-device",
                     "virtio-net-device,netdev=net,mac=" + s.mac});
  return a;
}

namespace {

// "6.1.0-56-amd64" > "6.1.0-9-amd64": numbers compare as numbers.
bool versionLess(const std::string& a, const std::string& b) {
  std::size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) && std::isdigit(static_cast<unsigned char>(b[j]))) {
      std::size_t i2 = i, j2 = j;
      while (i2 < a.size() && std::isdigit(static_cast<unsigned char>(a[i2]))) ++i2;
      while (j2 < b.size() && std::isdigit(static_cast<unsigned char>(b[j2]))) ++j2;
      auto x = std::stoull(a.substr(i, i2 - i)), y = std::stoull(b.substr(j, j2 - j));
      if (x != y) return x < y;
      i = i2;
      j = j2;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

// A module file, or built in.
bool hasModule(const fs::path& dir, const std::string& rel) {
  std::error_code ec;
  for (const char* ext : {".ko", ".ko.xz", ".ko.zst"})
    if (fs::exists(dir / (rel + ext), ec)) return true;
  auto builtin = readTextFile((dir / "modules.builtin").string());
  return builtin && builtin->find(rel + ".ko\n") != std::string::npos;
}

}  // namespace

Expected<GuestKernel> findGuestKernel(const std::string& boot_dir, const std::string& modules_root) {
  std::vector<GuestKernel> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(boot_dir, ec)) {
    std::string file = e.path().filename().string();
    if (!file.starts_with("vmlinuz-")) continue;
    GuestKernel k{file.substr(8), e.path().string(), (fs::path(modules_root) / file.substr(8)).string()};
    if (hasModule(k.modules_dir, "kernel/fs/9p/9p") && hasModule(k.modules_dir, "kernel/drivers/net/virtio_net"))
      found.push_back(k);
  }
  if (found.empty())
    return fail("no guest kernel: VM cells need a kernel in " + boot_dir + " with 9p and virtio-net modules in " +
                modules_root + " (apt-get install linux-image-amd64)");
  // A plain flavour first, then the newest version.
  auto rank = [](const GuestKernel& k) {
    return k.version.find("-cloud-") == std::string::npos && k.version.find("-rt-") == std::string::npos;
  };
  std::sort(found.begin(), found.end(), [&](const GuestKernel& a, const GuestKernel& b) {
    if (rank(a) != rank(b)) return rank(a) > rank(b);
    return versionLess(b.version, a.version);
  });
  return found.front();
}

}  // namespace cw::vm
