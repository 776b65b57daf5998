// A process's details from /proc, cached per (pid, start time) (docs/attribution.md, step 3).
//
// The BPF owner map gives a socket's tgid; this turns it into what rules and the UI name: the
// executable, the command line, the user, the parent's executable. A process is read from /proc
// once; later lookups read only /proc/<pid>/stat (one open and read) to check that the pid is
// still the same process, by its start time. A pid that was reused (another start time) is read
// afresh, never served the earlier process's details. exec() keeps the pid and the start time:
// it is noticed by the name (comm) in the same stat line changing, and the process read again;
// an exec of a program with the same name as the one before is not noticed by lookup(). It is
// by lookupKnown(), which is given the exec count the BPF programs recorded.
//
// What /proc can and cannot say:
//   - exe is readlink(/proc/<pid>/exe). A binary deleted or replaced since the process started
//     reads "<path> (deleted)": kept as is, so a rule on the path does not match a binary that
//     is no longer the file at that path. Unreadable (kernel thread, zombie, another user's
//     process without CAP_SYS_PTRACE): "".
//   - argv is /proc/<pid>/cmdline split at NULs, read up to kMaxCmdline bytes (argv_truncated
//     says it was cut). Empty for kernel threads and zombies. A process may rewrite its own
//     argv: it is what the process says, not proof. Empty, too, for a process read in the
//     middle of an exec (its new exe already in place, its arguments not yet): such a read is
//     returned but not cached.
//   - uid is the real uid (first field of Uid: in /proc/<pid>/status), the one the BPF programs
//     record (bpf_get_current_uid_gid).
//   - parent_exe is read when the process is first read; a parent that exits later is not
//     noticed.
//
// Threading: lookup() and stats() may be called from any thread (one lock; a miss reads /proc
// under it, a few microseconds).
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace cw::attrib {

struct ProcessInfo {
  std::uint32_t pid = 0;
  std::uint64_t start_time = 0;  // field 22 of /proc/<pid>/stat: clock ticks after boot
  std::string exe;               // "" if unreadable; may end in " (deleted)"
  std::string comm;              // the kernel's name for it (at most 15 bytes, may hold spaces)
  std::vector<std::string> argv;
  bool argv_truncated = false;
  std::uint32_t uid = 0;
  std::uint32_t ppid = 0;
  std::string parent_exe;  // "" if unreadable (or ppid 0)
  // A zombie (it has exited, its parent has not reaped it): its details are those read while it
  // lived, if it was read then. Callers also set this on details they made from the BPF map
  // for a process /proc no longer has.
  bool exited = false;

  // Which exec of the process the details are of, when the BPF record said (lookupKnown).
  std::uint64_t exec_id = 0;
  bool exec_id_known = false;

  // The command line as one string, arguments joined by spaces.
  std::string cmdline() const;
};

class ProcessCache {
 public:
  static constexpr std::size_t kMaxCmdline = 4096;

  struct Stats {
    std::uint64_t hits = 0;       // served from the cache after the start-time check
    std::uint64_t misses = 0;     // read from /proc (first sight, or a reused pid)
    std::uint64_t reused = 0;     // of the misses: a cached pid found to be another process
    std::uint64_t execs = 0;      // of the misses: same process, another name (it exec'd)
    std::uint64_t evictions = 0;  // dropped, least recently used first, to stay in capacity
    std::uint64_t gone = 0;       // lookups of a pid that no longer exists
  };

  // proc_root: where /proc is (tests pass a directory they wrote). capacity: processes kept.
  explicit ProcessCache(std::string proc_root = "/proc", std::size_t capacity = 4096);

  // The details of process `pid`; nullopt if it no longer exists (the caller then shows what
  // the BPF map recorded, marked exited).
  std::optional<ProcessInfo> lookup(std::uint32_t pid);

  // The details of the process the BPF programs recorded: pid, start time (clock ticks, as
  // /proc has it) and exec count. A cached entry of exactly that process and exec is served
  // without reading /proc at all (no system call); otherwise as lookup(), and nullopt when
  // the pid is now another process (the one recorded has exited).
  std::optional<ProcessInfo> lookupKnown(std::uint32_t pid, std::uint64_t start_ticks, std::uint64_t exec_id);

  Stats stats() const;
  std::size_t size() const;

 private:
  using Lru = std::list<ProcessInfo>;  // most recently used first

  std::optional<ProcessInfo> readProcess(std::uint32_t pid, std::string_view stat) const;

  std::string proc_root_;
  std::size_t capacity_;
  mutable std::mutex mu_;
  Lru lru_;
  std::unordered_map<std::uint32_t, Lru::iterator> by_pid_;
  Stats stats_;
};

// What /proc/<pid>/stat says that the cache needs. Exposed for its tests.
struct StatLine {
  std::string comm;
  char state = '?';
  std::uint32_t ppid = 0;
  std::uint64_t start_time = 0;
};
// Parses a /proc/<pid>/stat line. comm is everything between the first '(' and the last ')':
// it can itself hold spaces and parentheses. nullopt if the line is malformed.
std::optional<StatLine> parseStat(std::string_view line);

// The name of user `uid` (getpwuid_r), or the number as text if it has none.
std::string userName(std::uint32_t uid);

}  // namespace cw::attrib
