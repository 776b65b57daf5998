#include "common/cgroup.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace cw::cgroup {

Expected<std::string> root() {
  static const std::string found = [] {
    std::ifstream mounts("/proc/self/mounts");
    std::string line;
    while (std::getline(mounts, line)) {
      std::istringstream ls(line);
      std::string dev, dir, type;
      ls >> dev >> dir >> type;
      if (type == "cgroup2") return dir;
    }
    return std::string();
  }();
  if (found.empty()) return fail("no cgroup v2 hierarchy is mounted");
  return found;
}

Expected<std::string> ofProcess(int pid) {
  auto r = root();
  if (!r) return r;
  const std::string file = pid == 0 ? "/proc/self/cgroup" : "/proc/" + std::to_string(pid) + "/cgroup";
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("0::", 0) == 0) return *r + line.substr(3);
  return fail("no cgroup v2 line in " + file);
}

Expected<std::string> cellwallDir() {
  auto r = root();
  if (!r) return r;
  std::string base = *r + "/cellwall";
  if (::mkdir(base.c_str(), 0755) != 0 && errno != EEXIST)
    return fail("cannot create " + base + ": " + std::strerror(errno));
  return base;
}

Expected<std::string> create(const std::string& name) {
  auto base = cellwallDir();
  if (!base) return base;
  std::string dir = *base + "/" + name;
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
    return fail("cannot create " + dir + ": " + std::strerror(errno));
  return dir;
}

Expected<std::uint64_t> id(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return fail("cannot stat " + dir + ": " + std::strerror(errno));
  return static_cast<std::uint64_t>(st.st_ino);
}

Expected<void> killAndRemove(const std::string& dir) {
  if (dir.empty()) return {};
  // What the app left running (a child in the background) dies with the cell: its network is
  // gone, and a confined app's process must not outlive its cell unseen. cgroup.kill kills
  // every process in the cgroup at once, forks racing it included.
  if (std::ofstream kill(dir + "/cgroup.kill"); kill) kill << "1\n";
  for (int i = 0; i < 200; ++i) {  // the killed processes leave the cgroup once reaped
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return {};
    if (errno != EBUSY) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return fail("cannot remove " + dir + ": " + std::strerror(errno));
}

}  // namespace cw::cgroup
