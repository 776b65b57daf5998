// Which accelerator a VM cell runs under (docs/vm-cells.md, "KVM or software emulation").
//
// A host can have a /dev/kvm that opens and creates VMs while QEMU still cannot run a guest
// under it (a nested or unusual hypervisor: QEMU aborts with "failed to set MSR 0x10a"). So
// the probe (vm/vmm.h detectAccel) is only the first word: in mode `auto`, a cell whose QEMU
// under KVM dies before the guest's init speaks is started again under TCG, and that is
// recorded in the state directory, so that later cells go straight to TCG. The record is
// keyed by the QEMU binary and the host kernel: it is forgotten when either changes, or when
// the file is removed; mode `kvm` tries KVM whatever it says.
//
// Pure except for the record's file and the key (stat, uname). Any thread.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "vm/vmm.h"

namespace cw::vm {

// `--vm-accel` and the daemon's `vm_accel`.
enum class AccelMode { kAuto, kKvm, kTcg };
std::optional<AccelMode> parseAccelMode(std::string_view text);  // "auto", "kvm", "tcg"
const char* accelModeName(AccelMode m);

// What a cell runs under, and what to tell the person who started it.
struct AccelDecision {
  Accel accel = Accel::kTcg;
  // auto chose KVM: if QEMU dies before the guest speaks, start the cell again under TCG.
  bool may_fall_back = false;
  std::string note;  // why TCG, for stderr and the log ("" under KVM)
};

// mode, what the probe found, and the record of an earlier failure under KVM on this host
// (its text; nullopt: none for this QEMU and kernel). Fails for mode kvm when the probe says
// KVM is not there.
Expected<AccelDecision> decideAccel(AccelMode mode, const AccelChoice& probe,
                                    const std::optional<std::string>& recorded,
                                    const std::filesystem::path& record_file);

// The record: <state>/vm/kvm-unusable.
std::filesystem::path kvmRecordPath(const std::filesystem::path& state_dir);
// What the record is keyed by: the QEMU binary (path, size, modification time) and the host
// kernel (release and build). A QEMU or kernel update gives another key.
std::string kvmHostKey(const std::string& qemu = "qemu-system-x86_64");
// The record's text, if there is one for `key`.
std::optional<std::string> readKvmRecord(const std::filesystem::path& file, const std::string& key);
Expected<void> writeKvmRecord(const std::filesystem::path& file, const std::string& key, const std::string& why);

}  // namespace cw::vm
