// The one typed command set of cellwall. The CLI (and later the REST API and the web UI) only
// parse into these; the daemon only executes these. The wire form is one JSON object per line
// on the daemon's UNIX socket: {"cmd": "<name>", ...fields} -> {"ok": true, ...} or
// {"ok": false, "error": "..."}.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "common/result.h"

namespace cw::api {

// Creates a cell for `app` and plugs it into the bridge. The cell lives until CellExit, or
// until the connection that created it closes.
struct CellCreate {
  std::string app;
  std::string policy_text;    // TOML; empty: the daemon's policy for the app (or default deny)
  std::string policy_origin;  // file name for error messages
  std::string env;            // empty: the policy's env
  std::int64_t launcher_pid = 0;
};
struct CellInfo {
  std::uint32_t id = 0;
  std::string app, env, netns, ifname_host;
  std::string ip, mac, gateway;  // gateway is also the cell's DNS server
  std::uint32_t prefix_length = 32;
  std::uint32_t ofport = 0;
  std::string resolv_conf, hosts;  // files to bind-mount over /etc/resolv.conf and /etc/hosts
  std::string cgroup;              // cgroup v2 directory for the cell's processes ("" if none)
  std::int64_t launcher_pid = 0;
  std::int64_t created_unix = 0;
};
struct CellExit {
  std::uint32_t id = 0;
  int exit_status = 0;
};
struct CellList {};
struct FlowDump {};
struct Status {};
struct Shutdown {};

using Command = std::variant<CellCreate, CellExit, CellList, FlowDump, Status, Shutdown>;

// Replies.
struct Reply {
  bool ok = true;
  std::string error;
  std::vector<CellInfo> cells;     // CellCreate (one), CellList
  std::vector<std::string> lines;  // FlowDump, Status
};

std::string encodeCommand(const Command& c);
Expected<Command> decodeCommand(const std::string& line);
std::string encodeReply(const Reply& r);
Expected<Reply> decodeReply(const std::string& line);

}  // namespace cw::api
