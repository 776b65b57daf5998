#include "attrib/proc_info.h"

#include <fcntl.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <utility>

namespace cw::attrib {
namespace {

// The fields the cache needs end at field 22, in the first ~300 bytes; the rest may be cut.
constexpr std::size_t kStatSize = 1024;

// Up to `cap` bytes of a file; nullopt if it cannot be opened. `one_read`: a single read(),
// enough for a /proc file the kernel renders at once (stat), so the hit path stays one open,
// one read, one close.
std::optional<std::string> readFile(const std::string& path, std::size_t cap, bool one_read) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string out(cap, '\0');
  std::size_t got = 0;
  while (got < cap) {
    const ssize_t n = ::read(fd, out.data() + got, cap - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
    if (one_read) break;
  }
  ::close(fd);
  out.resize(got);
  return out;
}

std::string readLink(const std::string& path) {
  char buf[4096 + 16];  // PATH_MAX and " (deleted)"
  const ssize_t n = ::readlink(path.c_str(), buf, sizeof buf);
  if (n <= 0) return {};
  return std::string(buf, static_cast<std::size_t>(n));
}

template <class T>
bool parseNumber(std::string_view s, T& out) {
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

// The real uid: the first number on the "Uid:" line of /proc/<pid>/status.
std::optional<std::uint32_t> realUid(std::string_view status) {
  std::size_t at = 0;
  if (!status.starts_with("Uid:")) {
    at = status.find("\nUid:");
    if (at == std::string_view::npos) return std::nullopt;
    at += 1;
  }
  std::size_t p = at + 4;
  while (p < status.size() && (status[p] == ' ' || status[p] == '\t')) ++p;
  std::size_t e = p;
  while (e < status.size() && status[e] >= '0' && status[e] <= '9') ++e;
  std::uint32_t uid = 0;
  if (!parseNumber(status.substr(p, e - p), uid)) return std::nullopt;
  return uid;
}

std::vector<std::string> splitNul(std::string_view s) {
  std::vector<std::string> out;
  while (!s.empty()) {
    const std::size_t z = s.find('\0');
    out.emplace_back(s.substr(0, z));
    if (z == std::string_view::npos) break;
    s.remove_prefix(z + 1);
  }
  return out;
}

bool hasExited(char state) {
  return state == 'Z' || state == 'X';
}

}  // namespace

std::optional<StatLine> parseStat(std::string_view line) {
  const std::size_t open = line.find('(');
  const std::size_t close = line.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open)
    return std::nullopt;
  StatLine out;
  out.comm = std::string(line.substr(open + 1, close - open - 1));
  // After the comm: " state ppid pgrp ..." with starttime the 20th field (field 22 overall).
  std::string_view rest = line.substr(close + 1);
  std::string_view fields[20];
  std::size_t count = 0;
  while (count < 20) {
    if (rest.empty() || rest[0] != ' ') return std::nullopt;
    rest.remove_prefix(1);
    const std::size_t end = rest.find_first_of(" \n");
    fields[count++] = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end);
  }
  if (fields[0].size() != 1) return std::nullopt;
  out.state = fields[0][0];
  if (!parseNumber(fields[1], out.ppid) || !parseNumber(fields[19], out.start_time))
    return std::nullopt;
  return out;
}

std::string ProcessInfo::cmdline() const {
  std::string out;
  for (const std::string& a : argv) {
    if (!out.empty()) out += ' ';
    out += a;
  }
  return out;
}

ProcessCache::ProcessCache(std::string proc_root, std::size_t capacity)
    : proc_root_(std::move(proc_root)), capacity_(capacity == 0 ? 1 : capacity) {}

std::optional<ProcessInfo> ProcessCache::lookup(std::uint32_t pid) {
  const std::string dir = proc_root_ + "/" + std::to_string(pid);
  std::lock_guard lock(mu_);
  const auto cached = by_pid_.find(pid);
  const std::optional<std::string> text = readFile(dir + "/stat", kStatSize, true);
  const std::optional<StatLine> stat = text ? parseStat(*text) : std::nullopt;
  if (!stat) {
    if (cached != by_pid_.end()) {
      lru_.erase(cached->second);
      by_pid_.erase(cached);
    }
    ++stats_.gone;
    return std::nullopt;
  }
  if (cached != by_pid_.end()) {
    // Same start time and name: the same program. A different name with the same start time
    // is an exec (or a prctl rename): read again, the executable may have changed.
    if (cached->second->start_time == stat->start_time && cached->second->comm == stat->comm) {
      ++stats_.hits;
      lru_.splice(lru_.begin(), lru_, cached->second);
      ProcessInfo out = *cached->second;
      out.exited = out.exited || hasExited(stat->state);
      return out;
    }
    ++(cached->second->start_time == stat->start_time ? stats_.execs : stats_.reused);
    lru_.erase(cached->second);
    by_pid_.erase(cached);
  }
  ++stats_.misses;
  std::optional<ProcessInfo> info = readProcess(pid, *text);
  if (!info) {
    ++stats_.gone;
    return std::nullopt;
  }
  // Read in the middle of an exec: the new executable and name are in place but the kernel
  // has not yet set up the new command line, which reads empty. Served as read, never cached,
  // so the next lookup reads the command line the program runs with.
  if (!info->exited && !info->exe.empty() && info->argv.empty()) return info;
  lru_.push_front(*info);
  by_pid_[pid] = lru_.begin();
  while (lru_.size() > capacity_) {
    by_pid_.erase(lru_.back().pid);
    lru_.pop_back();
    ++stats_.evictions;
  }
  return info;
}

std::optional<ProcessInfo> ProcessCache::lookupKnown(std::uint32_t pid, std::uint64_t start_ticks,
                                                     std::uint64_t exec_id) {
  {
    std::lock_guard lock(mu_);
    const auto cached = by_pid_.find(pid);
    if (cached != by_pid_.end() && cached->second->exec_id_known && cached->second->exec_id == exec_id &&
        cached->second->start_time == start_ticks) {
      ++stats_.hits;
      lru_.splice(lru_.begin(), lru_, cached->second);
      return *cached->second;
    }
    // Another exec of the same process, even of a program with the same name: read afresh.
    if (cached != by_pid_.end() && cached->second->exec_id_known && cached->second->start_time == start_ticks) {
      ++stats_.execs;
      lru_.erase(cached->second);
      by_pid_.erase(cached);
    }
  }
  std::optional<ProcessInfo> info = lookup(pid);
  if (!info || info->start_time != start_ticks) return std::nullopt;
  std::lock_guard lock(mu_);
  if (const auto cached = by_pid_.find(pid); cached != by_pid_.end() && cached->second->start_time == start_ticks) {
    cached->second->exec_id = exec_id;
    cached->second->exec_id_known = true;
  }
  info->exec_id = exec_id;
  info->exec_id_known = true;
  return info;
}

std::optional<ProcessInfo> ProcessCache::readProcess(std::uint32_t pid,
                                                     std::string_view stat_text) const {
  const std::string dir = proc_root_ + "/" + std::to_string(pid);
  std::string stat_now(stat_text);
  // The files are read one by one while the process may exit and its pid be reused: stat is
  // read again after them, and the details kept only if it is still the same process.
  for (int attempt = 0; attempt < 2; ++attempt) {
    const std::optional<StatLine> stat = parseStat(stat_now);
    if (!stat) return std::nullopt;
    ProcessInfo p;
    p.pid = pid;
    p.start_time = stat->start_time;
    p.comm = stat->comm;
    p.ppid = stat->ppid;
    p.exited = hasExited(stat->state);
    p.exe = readLink(dir + "/exe");
    if (auto cmd = readFile(dir + "/cmdline", kMaxCmdline + 1, false)) {
      p.argv_truncated = cmd->size() > kMaxCmdline;
      if (p.argv_truncated) cmd->resize(kMaxCmdline);
      if (!cmd->empty() && cmd->back() == '\0') cmd->pop_back();
      p.argv = splitNul(*cmd);
    }
    if (auto status = readFile(dir + "/status", 16384, false)) p.uid = realUid(*status).value_or(0);
    if (p.ppid != 0) p.parent_exe = readLink(proc_root_ + "/" + std::to_string(p.ppid) + "/exe");

    const std::optional<std::string> again = readFile(dir + "/stat", kStatSize, true);
    const std::optional<StatLine> check = again ? parseStat(*again) : std::nullopt;
    if (!check) return std::nullopt;  // it exited while being read
    if (check->start_time == p.start_time) {
      p.exited = p.exited || hasExited(check->state);
      return p;
    }
    stat_now = *again;  // reused meanwhile: read the new process
  }
  return std::nullopt;
}

ProcessCache::Stats ProcessCache::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

std::size_t ProcessCache::size() const {
  std::lock_guard lock(mu_);
  return lru_.size();
}

std::string userName(std::uint32_t uid) {
  long hint = ::sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buf(hint > 0 ? static_cast<std::size_t>(hint) : 1024);
  for (;;) {
    passwd pw{};
    passwd* found = nullptr;
    const int e = ::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found);
    if (e == ERANGE && buf.size() < (1U << 20)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    if (e == 0 && found != nullptr && found->pw_name != nullptr) return found->pw_name;
    return std::to_string(uid);
  }
}

}  // namespace cw::attrib
