#include "attrib/sock_diag.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <thread>
#include <utility>

namespace cw::attrib {

namespace {

constexpr std::uint8_t kTcpListen = 10;

std::string errnoText(int e) { return std::strerror(e); }

// Netlink's framing, written out (its macros are C casts): 4-byte alignment, a header, a body.
constexpr std::size_t align4(std::size_t n) { return (n + 3) & ~std::size_t{3}; }
constexpr std::size_t kNlHeader = align4(sizeof(nlmsghdr));
constexpr std::size_t kRtaHeader = align4(sizeof(rtattr));

Expected<int> netlinkSocket() {
  const int fd = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) return fail("cannot open a sock_diag netlink socket: " + errnoText(errno));
  // The kernel answers within the request's own system call; a lookup never waits long for it.
  const timeval limit{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  return fd;
}

// An address of a reply's socket id as IPv4: an AF_INET6 socket answers for IPv4 with
// v4-mapped addresses (::ffff:a.b.c.d), or :: when bound to any.
std::optional<std::uint32_t> v4Of(std::uint8_t family, const __be32 (&a)[4]) {
  if (family == AF_INET) return ntohl(a[0]);
  if (a[0] != 0 || a[1] != 0) return std::nullopt;
  if (a[2] == 0 && a[3] == 0) return 0;
  if (a[2] == htonl(0xffff)) return ntohl(a[3]);
  return std::nullopt;
}

}  // namespace

Expected<SockDiag> SockDiag::open() {
  auto fd = netlinkSocket();
  if (!fd) return Unexpected(fd.error());
  return SockDiag(*fd);
}

Expected<SockDiag> SockDiag::openIn(const std::string& netns_path) {
  Expected<int> fd = fail("not opened");
  // setns() changes the calling thread's namespace only: a thread of its own enters it, opens
  // the socket (which keeps that namespace for good) and ends.
  std::thread t([&fd, &netns_path] {
    const int ns = ::open(netns_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (ns < 0) {
      fd = fail("cannot open network namespace " + netns_path + ": " + errnoText(errno));
      return;
    }
    if (::setns(ns, CLONE_NEWNET) != 0) {
      fd = fail("cannot enter network namespace " + netns_path + ": " + errnoText(errno) +
                (errno == EPERM ? " (this needs CAP_SYS_ADMIN)" : ""));
      ::close(ns);
      return;
    }
    ::close(ns);
    fd = netlinkSocket();
  });
  t.join();
  if (!fd) return Unexpected(fd.error());
  return SockDiag(*fd);
}

SockDiag::SockDiag(SockDiag&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)), seq_(o.seq_), mu_(std::move(o.mu_)) {}

SockDiag& SockDiag::operator=(SockDiag&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
    seq_ = o.seq_;
    mu_ = std::move(o.mu_);
  }
  return *this;
}

SockDiag::~SockDiag() {
  if (fd_ >= 0) ::close(fd_);
}

Expected<std::optional<SocketInfo>> SockDiag::find(const SocketId& id, bool allow_listener) {
  if (id.proto != IPPROTO_TCP && id.proto != IPPROTO_UDP) return fail("sock_diag: only TCP and UDP sockets");
  std::lock_guard lock(*mu_);
  struct {
    nlmsghdr nh;
    inet_diag_req_v2 r;
  } q{};
  q.nh.nlmsg_len = sizeof q;
  q.nh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  q.nh.nlmsg_flags = NLM_F_REQUEST;  // no NLM_F_DUMP: the one socket, looked up by its tuple
  q.nh.nlmsg_seq = ++seq_;
  q.r.sdiag_family = AF_INET;
  q.r.sdiag_protocol = id.proto;
  q.r.idiag_states = ~0u;
  q.r.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  q.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  // TCP looks up (src = local, dst = remote); UDP the other way round (the kernel's UDP lookup
  // takes the packet's view, in which the remote end is the source).
  const bool tcp = id.proto == IPPROTO_TCP;
  const Ip4 src = tcp ? id.local : id.remote, dst = tcp ? id.remote : id.local;
  const std::uint16_t sport = tcp ? id.local_port : id.remote_port, dport = tcp ? id.remote_port : id.local_port;
  q.r.id.idiag_src[0] = htonl(src.v);
  q.r.id.idiag_dst[0] = htonl(dst.v);
  q.r.id.idiag_sport = htons(sport);
  q.r.id.idiag_dport = htons(dport);
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(fd_, &q, sizeof q, 0, reinterpret_cast<const sockaddr*>(&kernel), sizeof kernel) < 0)
    return fail("sock_diag: cannot send the request: " + errnoText(errno));

  alignas(nlmsghdr) std::array<char, 8192> buf;
  for (;;) {
    const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return fail("sock_diag: no answer from the kernel within 1 s");
      return fail("sock_diag: cannot read the answer: " + errnoText(errno));
    }
    const char* at = buf.data();
    std::size_t left = static_cast<std::size_t>(n);
    while (left >= sizeof(nlmsghdr)) {
      nlmsghdr h;
      std::memcpy(&h, at, sizeof h);
      if (h.nlmsg_len < sizeof h || h.nlmsg_len > left) return fail("sock_diag: a truncated answer");
      const char* body = at + kNlHeader;
      const std::size_t body_len = h.nlmsg_len - std::min<std::size_t>(kNlHeader, h.nlmsg_len);
      const std::size_t step = std::min(align4(h.nlmsg_len), left);
      at += step;
      left -= step;
      if (h.nlmsg_seq != q.nh.nlmsg_seq) continue;  // an answer to an earlier request that gave up
      if (h.nlmsg_type == NLMSG_ERROR) {
        nlmsgerr e{};
        std::memcpy(&e, body, std::min(sizeof e, body_len));
        if (e.error == -ENOENT) return std::optional<SocketInfo>{};
        return fail("sock_diag: the kernel refused the lookup: " + errnoText(-e.error));
      }
      if (h.nlmsg_type != SOCK_DIAG_BY_FAMILY || body_len < sizeof(inet_diag_msg))
        return fail("sock_diag: an answer of an unexpected kind");
      inet_diag_msg msg;
      std::memcpy(&msg, body, sizeof msg);
      const inet_diag_msg* m = &msg;
      SocketInfo info;
      info.cookie = static_cast<std::uint64_t>(m->id.idiag_cookie[1]) << 32 | m->id.idiag_cookie[0];
      info.uid = m->idiag_uid;
      info.inode = m->idiag_inode;
      info.state = m->idiag_state;
      const char* attr = body + align4(sizeof msg);
      std::size_t alen = body_len - std::min(body_len, align4(sizeof msg));
      while (alen >= sizeof(rtattr)) {
        rtattr a;
        std::memcpy(&a, attr, sizeof a);
        if (a.rta_len < sizeof a || a.rta_len > alen) break;
        if (a.rta_type == INET_DIAG_CGROUP_ID && a.rta_len - kRtaHeader >= sizeof info.cgroup_id)
          std::memcpy(&info.cgroup_id, attr + kRtaHeader, sizeof info.cgroup_id);
        const std::size_t astep = std::min(align4(a.rta_len), alen);
        attr += astep;
        alen -= astep;
      }
      // The answer is always from the socket's side: src is its local end, dst its remote one.
      const auto local = v4Of(m->idiag_family, m->id.idiag_src);
      const auto remote = v4Of(m->idiag_family, m->id.idiag_dst);
      const std::uint16_t lport = ntohs(m->id.idiag_sport), rport = ntohs(m->id.idiag_dport);
      if (!local || !remote || lport != id.local_port || (*local != 0 && *local != id.local.v))
        return std::optional<SocketInfo>{};  // not the socket asked for
      const bool unconnected = *remote == 0 && rport == 0;
      if (tcp && info.state == kTcpListen) {
        if (!allow_listener) return std::optional<SocketInfo>{};
        info.listener = true;
      } else if (!tcp && unconnected) {
        info.wildcard = true;
      } else if (*remote != id.remote.v || rport != id.remote_port) {
        return std::optional<SocketInfo>{};
      }
      return std::optional<SocketInfo>{info};
    }
  }
}

}  // namespace cw::attrib
