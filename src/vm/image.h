// A VM cell's initramfs: cellwall's guest init (src/vm/guest/init.cc, built statically as
// cw-vminit) and the kernel modules it loads, in their load order. Built once per kernel and
// init, and kept in a cache directory; readable by everyone (it holds nothing secret) so that
// the unprivileged VMM can read it.
#pragma once

#include <string>

#include "common/result.h"
#include "vm/vmm.h"

namespace cw::vm {

// The guest's modules: virtio-mmio devices, the NIC, the control port, the 9p root, and
// overlayfs for a writable view of the host's /tmp.
extern const char* const kGuestModules[];

// The initramfs for `kernel` with the init at `init_path`: a cached file in `cache_dir` named
// after the kernel's version, the init's size and time and the module list, built
// (atomically) when missing.
Expected<std::string> ensureInitramfs(const GuestKernel& kernel, const std::string& init_path,
                                      const std::string& cache_dir);

// The kernel as an uncompressed ELF (vmlinux), which QEMU boots directly through the kernel's
// PVH entry: under TCG, decompressing a bzImage inside the guest costs seconds. Extracted once
// from the bzImage (its xz, zstd or gzip payload, with the system's decompressor) and cached in
// `cache_dir`. Fails when the image has no payload that decompresses to an ELF file.
Expected<std::string> ensureVmlinux(const GuestKernel& kernel, const std::string& cache_dir);

}  // namespace cw::vm
