// The process behind a socket, as cellwall's BPF programs recorded it (docs/attribution.md,
// step 2). OwnerMap loads bpf/owner.bpf.c and attaches it to one cgroup v2 directory, which
// covers every cgroup below it: cellwalld attaches it once to cellwall's own, above the cells'.
// The programs stay attached while the OwnerMap lives.
//
// Loading BPF programs and attaching them to a cgroup needs CAP_BPF and CAP_NET_ADMIN (or
// CAP_SYS_ADMIN): root, in practice; attach() says so when it is refused.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/net.h"
#include "common/result.h"

struct bpf_object;
struct bpf_link;

namespace cw::attrib {

struct Owner {
  std::uint32_t pid = 0;  // the process (thread group), in the host's pid namespace
  std::uint32_t tid = 0;  // the thread that made the call
  std::uint32_t uid = 0, gid = 0;
  std::uint64_t cgroup_id = 0;  // the process's cgroup v2 id at the time
  std::uint64_t when_ns = 0;    // CLOCK_MONOTONIC, when it was recorded
  std::string comm;             // the process's name (its first 15 bytes)
  std::uint64_t start_ns = 0;   // when the process started (CLOCK_BOOTTIME): pid + this = the process
  std::uint64_t exec_id = 0;    // its execs so far: the program it runs changes with this
};

class OwnerMap {
 public:
  static Expected<std::unique_ptr<OwnerMap>> attach(const std::string& cgroup_dir);
  ~OwnerMap();
  OwnerMap(const OwnerMap&) = delete;
  OwnerMap& operator=(const OwnerMap&) = delete;

  // The process that made the socket with this cookie, or connected, sent or bound with it
  // last; nullopt if none was recorded (a socket made before the programs were attached).
  std::optional<Owner> bySocket(std::uint64_t cookie) const;
  // The last process in cgroup `cgroup_id` that sent or bound from this local port (TCP or
  // UDP): found even after its socket was closed.
  std::optional<Owner> byPort(std::uint64_t cgroup_id, std::uint8_t proto, std::uint16_t port) const;
  // The process that opened this connection (TCP: connect(); UDP: sent on it last), from the
  // cell whose cgroup is `cgroup_id`: one lookup, no socket lookup needed.
  std::optional<Owner> byConnection(std::uint64_t cgroup_id, std::uint8_t proto, Ip4 local, std::uint16_t local_port,
                                    Ip4 remote, std::uint16_t remote_port) const;

 private:
  OwnerMap() = default;
  bpf_object* obj_ = nullptr;
  std::vector<bpf_link*> links_;
  int by_socket_fd_ = -1;
  int by_port_fd_ = -1;
  int by_conn_fd_ = -1;
};

}  // namespace cw::attrib
