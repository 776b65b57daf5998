// cellwalld's process attribution (docs/attribution.md): which process inside a cell owns a
// connection. Per cell, an exact sock_diag lookup in the cell's network namespace finds the
// socket; the BPF owner map (attached once to cellwall's cgroup, above every cell's) gives the
// process by the socket's cookie; /proc gives its details, cached per (pid, start time).
// Without BPF it falls back to the fds of the processes in the cell's own cgroup.
//
// Threads: addCell/removeCell on the control thread; find() on the switch threads,
// concurrently (a shared lock over the cells, a lock per cell's netlink socket).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_map>

#include "attrib/owners.h"
#include "attrib/proc_info.h"
#include "attrib/sock_diag.h"
#include "decide/decider.h"

namespace cw::daemon {

// When connections are attributed: never; only for apps whose rules name a process (the
// default: it costs nothing where nobody asked); or every connection, so the log shows who.
enum class AttributionMode : std::uint8_t { kOff, kRules, kAlways };
const char* attributionModeName(AttributionMode m);

class Attribution final : public decide::ProcessFinder {
 public:
  explicit Attribution(AttributionMode mode) : mode_(mode) {}

  // Loads the BPF owner programs on <cgroup2>/cellwall. When that is refused (no CAP_BPF,
  // a kernel without cgroup BPF) attribution falls back to scanning the cell's fds; the
  // returned text says which is in use and why.
  std::string start();

  // A cell's network namespace and cgroup ("" cgroup: its connections are not attributed).
  void addCell(std::uint32_t id, const std::string& netns_path, const std::string& cgroup_dir);
  void removeCell(std::uint32_t id);

  std::shared_ptr<const decide::ProcessInfo> find(const decide::CellPort& cell,
                                                  const decide::ConnTuple& t) override;
  bool always() const override { return mode_ == AttributionMode::kAlways; }
  AttributionMode mode() const { return mode_; }
  bool usesBpf() const { return owners_ != nullptr; }

  struct Stats {
    std::uint64_t found = 0;      // attributed to a process
    std::uint64_t no_socket = 0;  // the socket was gone and nothing recorded its port
    std::uint64_t no_owner = 0;   // a socket without a recorded owner
    std::uint64_t errors = 0;     // the kernel did not answer
  };
  Stats stats() const;

 private:
  struct Cell {
    attrib::SockDiag diag;
    std::string cgroup_dir;
    std::uint64_t cgroup_id = 0;
  };
  // The process's details: from the cache, checked against the record's start time and exec
  // count when it has them (BPF), else read from /proc; what was recorded if it is gone.
  std::shared_ptr<const decide::ProcessInfo> details(const attrib::Owner& o, const char* how);
  std::string user(std::uint32_t uid);

  const AttributionMode mode_;
  std::unique_ptr<attrib::OwnerMap> owners_;
  attrib::ProcessCache procs_;
  mutable std::shared_mutex cells_mu_;
  std::unordered_map<std::uint32_t, std::shared_ptr<Cell>> cells_;
  std::mutex users_mu_;
  std::map<std::uint32_t, std::string> users_;
  std::atomic<std::uint64_t> found_{0}, no_socket_{0}, no_owner_{0}, errors_{0};
  std::uint64_t ns_per_tick_ = 10'000'000;  // /proc's clock ticks (USER_HZ)
};

}  // namespace cw::daemon
