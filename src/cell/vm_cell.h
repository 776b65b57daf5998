// Runs a command in a VM cell (docs/vm-cells.md): the VMM starts in the cell's cgroup and
// (empty) network namespace as an unprivileged user, with the cell's tap as its NIC; the guest's
// init runs the command; this process relays stdin, stdout and stderr over the control channel
// and returns the command's exit status. Runs in `cellwall run --vm`, as root.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cell/launcher.h"
#include "common/result.h"
#include "vm/vmm.h"

namespace cw::cell {

struct VmCellSpec {
  std::string cell_name;  // "cw-c3": also the tap's name
  std::string netns_path, cgroup_dir, hide_dir;
  std::string mac, ip, gateway;
  std::uint32_t mtu = 0;
  std::string resolv_conf, hosts;  // the files' text, for the guest
  TargetUser user;                 // who runs the command inside the guest
  EnvFilter env;                   // what the guest's command (and the VMM) get of ours
  std::vector<std::string> argv;
  vm::VmSpec vm;  // accel, memory, CPUs (the rest is filled here)
  std::string kernel, initrd;
};

// The user the VMM runs as: the command's user, or nobody for root (the guest is root's to
// hand out inside, never the host's). With KVM, also in /dev/kvm's group.
Expected<TargetUser> vmmUser(const TargetUser& target, vm::Accel accel);

// Why a VM cell's run failed.
struct VmRunError {
  VmRunError() = default;
  VmRunError(Error e) : message(std::move(e.message)) {}  // NOLINT(google-explicit-constructor)
  std::string message;
  // The VMM ended by itself before the guest's init said a word: nothing of the command ran,
  // so the cell can be started again (under TCG, when it was KVM that failed: vm/accel.h).
  bool before_guest = false;
  std::string vmm_said;  // the VMM's last words (its stderr), for the record
};

// Boots the VM, relays until the command ends (or the VM does), and returns the shell-style
// status; forwards SIGINT, SIGTERM, SIGHUP, SIGQUIT by ending the VM (128+N). In tty mode
// (stdin and stdout are terminals) the terminal is raw and the guest's command gets its own.
Result<int, VmRunError> runVmCell(const VmCellSpec& spec, const vm::Vmm& vmm);

}  // namespace cw::cell
