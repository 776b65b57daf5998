#include "attrib/fd_scan.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <vector>

namespace cw::attrib {
namespace {

std::vector<std::uint32_t> cgroupPids(const std::string& cgroup_dir) {
  std::vector<std::uint32_t> pids;
  std::ifstream procs(cgroup_dir + "/cgroup.procs");
  std::uint32_t pid = 0;
  while (procs >> pid) pids.push_back(pid);
  std::sort(pids.begin(), pids.end());
  return pids;
}

// Whether one of process `fd_dir`'s fds is the socket whose link text is `want`.
bool holds(const std::string& fd_dir, std::string_view want) {
  DIR* d = ::opendir(fd_dir.c_str());
  if (d == nullptr) return false;  // exited, or not ours to read
  const int dfd = ::dirfd(d);
  bool found = false;
  char link[64];
  while (!found) {
    const dirent* e = ::readdir(d);
    if (e == nullptr) break;
    if (e->d_name[0] == '.') continue;
    // readlinkat on the directory's fd: no path built per fd.
    const ssize_t n = ::readlinkat(dfd, e->d_name, link, sizeof link);
    found = n == static_cast<ssize_t>(want.size()) && want == std::string_view(link, want.size());
  }
  ::closedir(d);
  return found;
}

}  // namespace

std::optional<std::uint32_t> findSocketOwner(const std::string& cgroup_dir, std::uint64_t inode,
                                             std::string_view proc_root) {
  const std::string want = "socket:[" + std::to_string(inode) + "]";
  for (std::uint32_t pid : cgroupPids(cgroup_dir))
    if (holds(std::string(proc_root) + "/" + std::to_string(pid) + "/fd", want)) return pid;
  return std::nullopt;
}

}  // namespace cw::attrib
