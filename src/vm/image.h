// A VM cell's initramfs: cellwall's guest init (src/vm/guest/init.cc, built statically as
// cw-vminit) and the kernel modules it loads, in their load order. Built once per kernel and
// init, and kept in a cache directory; readable by everyone (it holds nothing secret) so that
// the unprivileged VMM can read it.
#pragma once

#include <string>

#include "common/result.h"
#include "vm/vmm.h"

namespace cw::vm {

// The guest's modules: virtio-mmio devices, the NIC, the control port, the 9p root.
extern const char* const kGuestModules[];

// The initramfs for `kernel` with the init at `init_path`: a cached file in `cache_dir` named
// after the kernel's version and the init's size and time, built (atomically) when missing.
Expected<std::string> ensureInitramfs(const GuestKernel& kernel, const std::string& init_path,
                                      const std::string& cache_dir);

}  // namespace cw::vm
