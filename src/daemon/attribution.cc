#include "daemon/attribution.h"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include "attrib/fd_scan.h"
#include "common/cgroup.h"
#include "packet/frame.h"

namespace cw::daemon {

const char* attributionModeName(AttributionMode m) {
  switch (m) {
    case AttributionMode::kOff: return "off";
    case AttributionMode::kRules: return "rules";
    case AttributionMode::kAlways: return "always";
  }
  return "?";
}

std::string Attribution::start() {
  if (mode_ == AttributionMode::kOff) return "process attribution is off";
  auto dir = cgroup::cellwallDir();
  if (!dir) return "process attribution: no cgroup v2 (" + dir.error().message + "): connections are not attributed";
  auto owners = attrib::OwnerMap::attach(*dir);
  if (!owners)
    return "process attribution without BPF (" + owners.error().message +
           "): owners are found by scanning the cell's open files, whose cost grows with them";
  owners_ = std::move(owners).value();
  if (const long hz = ::sysconf(_SC_CLK_TCK); hz > 0) ns_per_tick_ = 1'000'000'000ULL / static_cast<std::uint64_t>(hz);
  return "process attribution: BPF owner programs on " + *dir + " (" + attributionModeName(mode_) + ")";
}

void Attribution::addCell(std::uint32_t id, const std::string& netns_path, const std::string& cgroup_dir) {
  if (mode_ == AttributionMode::kOff || cgroup_dir.empty()) return;
  auto diag = attrib::SockDiag::openIn(netns_path);
  if (!diag) {
    spdlog::warn("cell {}: its connections will not be attributed: {}", id, diag.error().message);
    return;
  }
  auto cg = cgroup::id(cgroup_dir);
  if (!cg) {
    spdlog::warn("cell {}: its connections will not be attributed: {}", id, cg.error().message);
    return;
  }
  auto c = std::make_shared<Cell>(Cell{std::move(diag).value(), cgroup_dir, *cg});
  std::unique_lock lock(cells_mu_);
  cells_[id] = std::move(c);
}

void Attribution::removeCell(std::uint32_t id) {
  std::unique_lock lock(cells_mu_);
  cells_.erase(id);
}

Attribution::Stats Attribution::stats() const {
  return Stats{found_.load(std::memory_order_relaxed), no_socket_.load(std::memory_order_relaxed),
               no_owner_.load(std::memory_order_relaxed), errors_.load(std::memory_order_relaxed)};
}

std::string Attribution::user(std::uint32_t uid) {
  std::lock_guard lock(users_mu_);
  auto it = users_.find(uid);
  if (it != users_.end()) return it->second;
  std::string name = attrib::userName(uid);
  if (name == std::to_string(uid)) name.clear();  // no name: rules by name never match it
  if (users_.size() < 4096) users_.emplace(uid, name);
  return name;
}

std::shared_ptr<const decide::ProcessInfo> Attribution::details(const attrib::Owner& o, const char* how) {
  auto p = std::make_shared<decide::ProcessInfo>();
  p->pid = o.pid;
  p->how = how;
  // With the BPF record's start time and exec count, a known process costs no /proc read.
  auto info = o.start_ns != 0 ? procs_.lookupKnown(o.pid, o.start_ns / ns_per_tick_, o.exec_id) : procs_.lookup(o.pid);
  if (info) {
    p->uid = info->uid;
    p->exe = std::move(info->exe);
    p->comm = std::move(info->comm);
    p->cmdline = info->cmdline();
    p->parent_exe = std::move(info->parent_exe);
    // cellwalld reads any process's exe; one it cannot read is exiting (its memory is gone
    // before it becomes a zombie).
    p->exited = info->exited || p->exe.empty();
  } else {
    // Gone already (a process that exited right after connect()): what the kernel recorded.
    p->uid = o.uid;
    p->exited = true;
  }
  if (p->comm.empty()) p->comm = o.comm;
  p->user = user(p->uid);
  found_.fetch_add(1, std::memory_order_relaxed);
  return p;
}

std::shared_ptr<const decide::ProcessInfo> Attribution::find(const decide::CellPort& port,
                                                             const decide::ConnTuple& t) {
  std::shared_ptr<Cell> cell;
  {
    std::shared_lock lock(cells_mu_);
    auto it = cells_.find(port.cell_id);
    if (it == cells_.end()) return nullptr;
    cell = it->second;
  }
  if (owners_ != nullptr) {
    // One lookup: the connection's opener as the kernel recorded it when the SYN (or the
    // datagram) left; an inbound connection's listener by its port. The socket lookup below is
    // the fallback (a socket made before the programs were attached).
    std::optional<attrib::Owner> o;
    if (t.inbound && t.proto == packet::kProtoTcp)
      o = owners_->byPort(cell->cgroup_id, t.proto, t.local_port);
    else if (!t.inbound)
      o = owners_->byConnection(cell->cgroup_id, t.proto, t.local, t.local_port, t.remote, t.remote_port);
    if (o) return details(*o, t.inbound ? "listener" : "connection");
  }
  auto sock = cell->diag.find(attrib::SocketId{t.proto, t.local, t.local_port, t.remote, t.remote_port},
                              t.inbound);
  if (!sock) {
    errors_.fetch_add(1, std::memory_order_relaxed);
    spdlog::debug("cell {}: attribution: {}", port.cell_id, sock.error().message);
    return nullptr;
  }
  if (owners_ != nullptr) {
    if (*sock) {
      if (auto o = owners_->bySocket((*sock)->cookie)) return details(*o, (*sock)->listener ? "listener" : "socket");
    }
    // A UDP socket already closed (a one-shot query), or one whose owner was not recorded:
    // the last process of this cell that sent from or bound the port.
    if (auto o = owners_->byPort(cell->cgroup_id, t.proto, t.local_port)) return details(*o, "port");
  } else if (*sock && (*sock)->inode != 0) {
    if (auto pid = attrib::findSocketOwner(cell->cgroup_dir, (*sock)->inode)) {
      attrib::Owner found;  // no record: /proc tells the rest
      found.pid = *pid;
      found.uid = (*sock)->uid;
      return details(found, "fd-scan");
    }
  }
  (*sock ? no_owner_ : no_socket_).fetch_add(1, std::memory_order_relaxed);
  spdlog::debug("cell {}: {} {}:{} -> {}:{}{}: {}", port.cell_id, t.proto == packet::kProtoTcp ? "tcp" : "udp",
                t.local.str(), t.local_port, t.remote.str(), t.remote_port, t.inbound ? " (inbound)" : "",
                *sock ? "a socket without a recorded owner" : "no socket");
  return nullptr;
}

}  // namespace cw::daemon
