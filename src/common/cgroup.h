// The cgroup v2 hierarchy: where it is mounted, and a cell's cgroup made and removed.
// cellwalld keeps each cell's processes in <cgroup2>/cellwall/cw-c<ID> (docs/launcher.md,
// docs/attribution.md): the launcher moves the app there, attribution checks a socket's
// cgroup against it, and removing the cell kills whatever is still in it.
#pragma once

#include <cstdint>
#include <string>

#include "common/result.h"

namespace cw::cgroup {

// The cgroup v2 mount point: /sys/fs/cgroup on a unified system, /sys/fs/cgroup/unified on a
// hybrid one. Read once from /proc/self/mounts; an error if none is mounted.
Expected<std::string> root();

// The cgroup v2 directory process `pid` is in (0: this process), from /proc/<pid>/cgroup.
Expected<std::string> ofProcess(int pid = 0);

// <root>/cellwall, created if missing.
Expected<std::string> cellwallDir();

// Creates <root>/cellwall/<name> (fine if it exists) and returns its path.
Expected<std::string> create(const std::string& name);

// The cgroup's id, as the kernel reports it (INET_DIAG_CGROUP_ID, bpf_get_current_cgroup_id):
// the directory's inode number.
Expected<std::uint64_t> id(const std::string& dir);

// Kills every process in the cgroup (cgroup.kill, Linux 5.14) and removes it, waiting up to
// 2 s for the killed processes to be reaped. Fine if it does not exist.
Expected<void> killAndRemove(const std::string& dir);

}  // namespace cw::cgroup
