// The pieces of a VM cell's initramfs (docs/vm-cells.md): a cpio archive in the kernel's
// "newc" format, and the order in which the guest loads its kernel modules (busybox's
// insmod resolves no dependencies). Pure: the caller reads the files and writes the result.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace cw::vm {

// Writes a newc archive, entries in the order added (a directory before what it holds).
// Paths are relative ("init", "lib/modules/virtio.ko"); every entry is owned by root.
class CpioWriter {
 public:
  void addDirectory(std::string_view path, std::uint32_t mode = 0755);
  void addFile(std::string_view path, std::string_view data, std::uint32_t mode = 0644);
  void addSymlink(std::string_view path, std::string_view target);
  // The archive, with its trailer. The writer is empty afterwards.
  std::string finish();

 private:
  void entry(std::string_view path, std::uint32_t mode, std::string_view data);
  std::string out_;
  std::uint32_t ino_ = 1;
};

// modules.dep as depmod writes it: "kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko ...".
using ModuleDeps = std::map<std::string, std::vector<std::string>>;
Expected<ModuleDeps> parseModulesDep(std::string_view text);

// The modules to load for `wanted` (names as in lsmod: "9p", "virtio_net"; '-' and '_' are
// the same), each after everything it depends on, each once; paths as in modules.dep.
// A module of `builtin` (modules.builtin's names) needs no file. Errors name what is missing.
Expected<std::vector<std::string>> moduleLoadOrder(const ModuleDeps& deps, const std::vector<std::string>& wanted,
                                                   const std::vector<std::string>& builtin = {});

}  // namespace cw::vm
