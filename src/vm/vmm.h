// What a VM cell needs from a virtual machine monitor (docs/vm-cells.md, "Other VMMs"), and
// the one Debian ships: QEMU's microvm. The launcher gives the VMM its devices as inherited file
// descriptors — the cell's tap, the control channel's socket, the console's socket, the kernel
// and the initramfs — so the VMM needs no privilege, no path into cellwall's state, and no
// network of its own.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"

namespace cw::vm {

enum class Accel { kKvm, kTcg };
const char* accelName(Accel a);

struct AccelChoice {
  Accel accel = Accel::kTcg;
  std::string why;  // for TCG: why KVM is not used ("/dev/kvm: No such file or directory")
};
// KVM when /dev/kvm opens and creates a VM; software emulation (TCG) otherwise.
AccelChoice detectAccel(const std::string& dev = "/dev/kvm");

// The host's TSC rate, measured over 20 ms (0 if it cannot be): a TCG guest's TSC runs at it.
std::uint64_t hostTscKhz();

// The file descriptor numbers the VMM process finds its devices at.
struct VmFds {
  int tap = 3, control = 4, console = 5, kernel = 6, initrd = 7;
};

struct VmSpec {
  Accel accel = Accel::kTcg;
  std::uint32_t memory_mib = 256;
  std::uint32_t cpus = 1;
  std::string mac;          // the guest NIC's: the one the switch expects of the cell
  std::string kernel_args;  // appended to the VMM's own
  VmFds fds;
};

class Vmm {
 public:
  virtual ~Vmm() = default;
  virtual std::string name() const = 0;
  // The program and its arguments; fails when the spec asks for what this VMM cannot do.
  virtual Expected<std::vector<std::string>> command(const VmSpec& spec) const = 0;
};

// qemu-system-x86_64 -M microvm: virtio-mmio devices, no firmware, no PCI.
class QemuMicrovm : public Vmm {
 public:
  explicit QemuMicrovm(std::string binary = "qemu-system-x86_64") : binary_(std::move(binary)) {}
  std::string name() const override { return "qemu"; }
  Expected<std::vector<std::string>> command(const VmSpec& spec) const override;

 private:
  std::string binary_;
};

// A guest kernel: the newest /boot/vmlinuz-VERSION whose modules include 9p and virtio-net
// (Debian's linux-image-amd64; the cloud and realtime flavours are passed over while a generic
// one is there: the cloud kernel has no 9p).
struct GuestKernel {
  std::string version, image, modules_dir;
};
Expected<GuestKernel> findGuestKernel(const std::string& boot_dir = "/boot",
                                      const std::string& modules_root = "/lib/modules");

}  // namespace cw::vm
