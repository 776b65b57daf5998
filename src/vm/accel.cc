#include "vm/accel.h"

#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdlib>

#include "common/file.h"

namespace cw::vm {

namespace fs = std::filesystem;

std::optional<AccelMode> parseAccelMode(std::string_view text) {
  if (text == "auto") return AccelMode::kAuto;
  if (text == "kvm") return AccelMode::kKvm;
  if (text == "tcg") return AccelMode::kTcg;
  return std::nullopt;
}

const char* accelModeName(AccelMode m) {
  switch (m) {
    case AccelMode::kAuto: return "auto";
    case AccelMode::kKvm: return "kvm";
    case AccelMode::kTcg: return "tcg";
  }
  return "auto";
}

Expected<AccelDecision> decideAccel(AccelMode mode, const AccelChoice& probe,
                                    const std::optional<std::string>& recorded, const fs::path& record_file) {
  AccelDecision d;
  if (mode == AccelMode::kTcg) {
    d.note = "the VM runs under software emulation (TCG), as asked (vm-accel tcg)";
    return d;
  }
  if (probe.accel != Accel::kKvm) {
    if (mode == AccelMode::kKvm)
      return fail("KVM is not usable here (" + probe.why +
                  "); run with --vm-accel tcg (software emulation, much slower) or auto (the default)");
    d.note = "no KVM (" + probe.why + "): the VM runs under software emulation (TCG), much slower";
    return d;
  }
  if (mode == AccelMode::kAuto && recorded) {
    d.note = "KVM failed on this host before (" + *recorded + "; recorded in " + record_file.string() +
             "): the VM runs under software emulation (TCG), much slower. --vm-accel kvm tries KVM again; "
             "remove the file to let auto try it";
    return d;
  }
  d.accel = Accel::kKvm;
  d.may_fall_back = mode == AccelMode::kAuto;
  return d;
}

fs::path kvmRecordPath(const fs::path& state_dir) { return state_dir / "vm" / "kvm-unusable"; }

namespace {

// The binary PATH names (cellwalld's; the launcher's is usually the same, and a QEMU that
// is not found is keyed by its name alone).
std::string findProgram(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* env = std::getenv("PATH");
  std::string path = env != nullptr ? env : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  for (std::size_t at = 0; at <= path.size();) {
    std::size_t end = path.find(':', at);
    if (end == std::string::npos) end = path.size();
    const std::string p = path.substr(at, end - at) + "/" + name;
    if (end > at && ::access(p.c_str(), X_OK) == 0) return p;
    at = end + 1;
  }
  return name;
}

}  // namespace

std::string kvmHostKey(const std::string& qemu) {
  const std::string path = findProgram(qemu);
  std::string key = "qemu " + path;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0)
    key += " size " + std::to_string(st.st_size) + " mtime " + std::to_string(st.st_mtim.tv_sec) + "." +
           std::to_string(st.st_mtim.tv_nsec);
  utsname u{};
  if (::uname(&u) == 0) key += "; kernel " + std::string(u.release) + " " + u.version;
  return key;
}

// The file: "key: KEY\nwhy: WHY\n" (one line each; newlines in WHY become spaces).
std::optional<std::string> readKvmRecord(const fs::path& file, const std::string& key) {
  auto text = readTextFile(file);
  if (!text) return std::nullopt;
  const std::string want = "key: " + key + "\n";
  if (text->rfind(want, 0) != 0) return std::nullopt;
  std::string why = text->substr(want.size());
  if (why.rfind("why: ", 0) == 0) why.erase(0, 5);
  while (!why.empty() && why.back() == '\n') why.pop_back();
  return why.empty() ? std::string("QEMU under KVM ended before the guest started") : why;
}

Expected<void> writeKvmRecord(const fs::path& file, const std::string& key, const std::string& why) {
  std::error_code ec;
  fs::create_directories(file.parent_path(), ec);
  std::string one_line = why;
  for (char& c : one_line)
    if (c == '\n' || c == '\r') c = ' ';
  return writeFileAtomically(file, "key: " + key + "\nwhy: " + one_line + "\n");
}

}  // namespace cw::vm
