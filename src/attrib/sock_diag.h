// Which socket a connection belongs to, asked of the kernel (docs/attribution.md, step 1).
//
// One exact NETLINK_SOCK_DIAG request per lookup: the kernel finds the one socket by its
// 4-tuple in its hash tables, so the cost does not grow with the number of sockets (a dump
// would read them all). A netlink socket answers about the network namespace it was opened in:
// a cell's SockDiag is opened inside the cell's namespace and then used from anywhere.
//
// IPv4, TCP and UDP. Thread-safe: a lookup holds the object's lock for its request and answer.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "common/net.h"
#include "common/result.h"

namespace cw::attrib {

// A connection as the cell sees it: its local end and the remote end.
struct SocketId {
  std::uint8_t proto = 6;  // IPPROTO_TCP or IPPROTO_UDP
  Ip4 local;
  std::uint16_t local_port = 0;
  Ip4 remote;
  std::uint16_t remote_port = 0;
};

struct SocketInfo {
  std::uint64_t cookie = 0;     // the kernel's id for the socket (what the BPF programs key by)
  std::uint32_t uid = 0;        // its owner
  std::uint32_t inode = 0;      // 0 for a connection not yet accepted
  std::uint64_t cgroup_id = 0;  // the cgroup v2 id it was made in (0: the kernel gave none)
  std::uint8_t state = 0;       // TCP state (TCP_ESTABLISHED = 1, TCP_SYN_SENT = 2, TCP_LISTEN = 10...)
  // The answer is not the socket of this 4-tuple but the one that would take it: a TCP
  // listener on the local port (an inbound SYN not yet accepted), or a UDP socket bound to the
  // local end and connected to nothing.
  bool listener = false;
  bool wildcard = false;
};

class SockDiag {
 public:
  // A netlink socket in this thread's network namespace.
  static Expected<SockDiag> open();
  // One in the network namespace at `netns_path` (/run/netns/NAME, /proc/PID/ns/net): opened
  // by a thread that enters that namespace for the purpose (the caller's stays as it is).
  static Expected<SockDiag> openIn(const std::string& netns_path);

  SockDiag(SockDiag&& o) noexcept;
  SockDiag& operator=(SockDiag&& o) noexcept;
  ~SockDiag();

  // The socket of `id`; nullopt if there is none (closed already, or never made). A TCP
  // 4-tuple that is not found gives its port's listener only when `allow_listener` (the
  // connection is an inbound SYN the kernel has not seen yet); otherwise an answer about
  // another socket than the one asked for is refused, never passed off as it.
  Expected<std::optional<SocketInfo>> find(const SocketId& id, bool allow_listener = false);

 private:
  explicit SockDiag(int fd) : fd_(fd) {}
  int fd_ = -1;
  std::uint32_t seq_ = 0;
  std::unique_ptr<std::mutex> mu_ = std::make_unique<std::mutex>();
};

}  // namespace cw::attrib
