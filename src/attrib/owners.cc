#include "attrib/owners.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>

namespace cw {
extern const unsigned char kOwnerBpfObject[];
extern const std::size_t kOwnerBpfObject_size;
}  // namespace cw

namespace cw::attrib {

namespace {

// The maps' layouts, as bpf/owner.bpf.c has them.
struct RawOwner {
  std::uint32_t tgid, tid, uid, gid;
  std::uint64_t cgroup_id, when_ns;
  char comm[16];
  std::uint64_t start_ns, exec_id;
};
static_assert(sizeof(RawOwner) == 64);
struct RawConnKey {
  std::uint64_t cgroup_id;
  std::uint32_t local, remote;  // network order
  std::uint16_t local_port, remote_port;
  std::uint8_t proto;
  std::uint8_t pad[3];
};
static_assert(sizeof(RawConnKey) == 24);
struct RawPortKey {
  std::uint64_t cgroup_id;
  std::uint16_t port;
  std::uint8_t proto;
  std::uint8_t pad[5];
};
static_assert(sizeof(RawPortKey) == 16);

Owner ownerOf(const RawOwner& r) {
  Owner o;
  o.pid = r.tgid;
  o.tid = r.tid;
  o.uid = r.uid;
  o.gid = r.gid;
  o.cgroup_id = r.cgroup_id;
  o.when_ns = r.when_ns;
  o.comm.assign(r.comm, strnlen(r.comm, sizeof r.comm));
  o.start_ns = r.start_ns;
  o.exec_id = r.exec_id;
  return o;
}

// libbpf's messages (the verifier's among them) go into the error of the attach that failed.
std::mutex g_log_mu;
std::string g_log;

int toLog(enum libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  char line[512];
  const int n = std::vsnprintf(line, sizeof line, format, args);
  if (n > 0 && g_log.size() < 4096) g_log.append(line, std::min<std::size_t>(static_cast<std::size_t>(n), sizeof line - 1));
  return 0;
}

std::string privilegeHint(int e) {
  return e == EPERM || e == EACCES ? " (loading BPF programs and attaching them to a cgroup needs root: CAP_BPF and CAP_NET_ADMIN)"
                                   : "";
}

}  // namespace

Expected<std::unique_ptr<OwnerMap>> OwnerMap::attach(const std::string& cgroup_dir) {
  std::lock_guard log_lock(g_log_mu);
  g_log.clear();
  libbpf_set_print(&toLog);
  std::unique_ptr<OwnerMap> m(new OwnerMap);
  bpf_object_open_opts opts{};
  opts.sz = sizeof opts;
  opts.object_name = "cw_owner";
  m->obj_ = bpf_object__open_mem(kOwnerBpfObject, kOwnerBpfObject_size, &opts);
  if (m->obj_ == nullptr) return fail("cannot open cellwall's BPF programs: " + std::string(std::strerror(errno)));
  if (const int e = bpf_object__load(m->obj_); e != 0) {
    std::string why = "cannot load cellwall's BPF programs: " + std::string(std::strerror(-e)) + privilegeHint(-e);
    if (!g_log.empty()) why += "; libbpf: " + g_log;
    return fail(why);
  }
  const int cg = ::open(cgroup_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cg < 0) return fail("cannot open cgroup " + cgroup_dir + ": " + std::strerror(errno));
  bpf_program* prog = nullptr;
  bpf_object__for_each_program(prog, m->obj_) {
    bpf_link* link = bpf_program__attach_cgroup(prog, cg);
    if (link == nullptr) {
      const int e = errno;
      ::close(cg);
      return fail(std::string("cannot attach BPF program ") + bpf_program__name(prog) + " to " + cgroup_dir + ": " +
                  std::strerror(e) + privilegeHint(e));
    }
    m->links_.push_back(link);
  }
  ::close(cg);
  m->by_socket_fd_ = bpf_object__find_map_fd_by_name(m->obj_, "cw_owner");
  m->by_port_fd_ = bpf_object__find_map_fd_by_name(m->obj_, "cw_port_owner");
  m->by_conn_fd_ = bpf_object__find_map_fd_by_name(m->obj_, "cw_conn_owner");
  if (m->by_socket_fd_ < 0 || m->by_port_fd_ < 0 || m->by_conn_fd_ < 0)
    return fail("cellwall's BPF object has no owner maps");
  return m;
}

OwnerMap::~OwnerMap() {
  for (bpf_link* l : links_) bpf_link__destroy(l);
  if (obj_ != nullptr) bpf_object__close(obj_);
}

std::optional<Owner> OwnerMap::bySocket(std::uint64_t cookie) const {
  RawOwner r{};
  if (bpf_map_lookup_elem(by_socket_fd_, &cookie, &r) != 0) return std::nullopt;
  return ownerOf(r);
}

std::optional<Owner> OwnerMap::byPort(std::uint64_t cgroup_id, std::uint8_t proto, std::uint16_t port) const {
  RawPortKey k{};
  k.cgroup_id = cgroup_id;
  k.port = port;
  k.proto = proto;
  RawOwner r{};
  if (bpf_map_lookup_elem(by_port_fd_, &k, &r) != 0) return std::nullopt;
  return ownerOf(r);
}

std::optional<Owner> OwnerMap::byConnection(std::uint64_t cgroup_id, std::uint8_t proto, Ip4 local,
                                            std::uint16_t local_port, Ip4 remote, std::uint16_t remote_port) const {
  RawConnKey k{};
  k.cgroup_id = cgroup_id;
  k.local = htonl(local.v);
  k.remote = htonl(remote.v);
  k.local_port = local_port;
  k.remote_port = remote_port;
  k.proto = proto;
  RawOwner r{};
  if (bpf_map_lookup_elem(by_conn_fd_, &k, &r) != 0) return std::nullopt;
  return ownerOf(r);
}

}  // namespace cw::attrib
