// Which process in a cell owns a socket, without BPF (docs/attribution.md, "Without BPF").
//
// The fallback when the BPF owner programs cannot be loaded: the socket's inode (from the
// sock_diag answer) is looked for among the open fds of the processes in the cell's own cgroup
// (<cgroup_dir>/cgroup.procs), never in all of /proc. Exact, but the cost grows with the
// number of fds the cell's processes hold: one readlink per fd until the owner is found.
//
// Rule when several processes hold the socket (an fd inherited across fork, or passed over a
// Unix socket): the lowest pid wins, usually the parent that made it. Threads share their
// process's fd table; a thread with a table of its own (clone without CLONE_FILES) is not seen.
// Only the cgroup itself is read, not cgroups below it.
//
// Needs the right to read other processes' fd links (root or CAP_SYS_PTRACE for processes of
// other users); processes whose fds cannot be read are skipped. A cgroup that cannot be read,
// or no process holding the socket, gives nullopt.
//
// Thread-safe: no state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cw::attrib {

std::optional<std::uint32_t> findSocketOwner(const std::string& cgroup_dir, std::uint64_t inode,
                                             std::string_view proc_root = "/proc");

}  // namespace cw::attrib
