// Which scripts cellwalld runs, from where, and the `cellwall script` commands
// (docs/scripts.md):
//  - shipped scripts (the repository's lua/, `scripts_dir`) run when the configuration has a
//    [script.NAME] table for them;
//  - user scripts are every <state>/scripts/NAME.lua; `cellwall script load` writes one there;
//    a NAME.helper file next to it runs it in a helper process;
//  - both are watched (inotify): a script whose file changes is loaded again, one whose file
//    goes away is unloaded; the old version runs until the new one has loaded.
//
// Control thread only.
#pragma once

// A C library header before asio: asio decides whether it may use aligned_alloc from glibc's
// version macros, and a file that included asio first would compile its allocator differently
// from the others (one handler allocated with operator new, freed with free: ASan's
// alloc-dealloc-mismatch).
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <asio.hpp>

#include "api/commands.h"
#include "common/result.h"
#include "daemon/config.h"
#include "daemon/scripts.h"

namespace cw::daemon {

class ScriptAdmin {
 public:
  ScriptAdmin(ScriptHost& host, const Config& cfg, asio::io_context& control);
  ~ScriptAdmin();

  // Loads the configured shipped scripts and every user script. A script that fails to load
  // stops cellwalld from starting: it was asked for, and running without it would be quietly
  // weaker. Then watches the directories and runs the scripts' timers.
  Expected<void> start();
  void stop();

  api::Reply list() const;
  api::Reply load(const api::ScriptLoad& cmd);
  api::Reply unload(const api::ScriptUnload& cmd);
  api::Reply reload(const api::ScriptReload& cmd);

  const std::filesystem::path& userDir() const { return user_dir_; }

 private:
  ScriptHost::Spec specFor(const std::string& name, const std::filesystem::path& path,
                           const std::string& origin) const;
  void watch();
  void readEvents();
  void onFileEvent(const std::filesystem::path& dir, const std::string& file);
  void runTimers();

  ScriptHost& host_;
  const Config& cfg_;
  asio::io_context& control_;
  std::filesystem::path user_dir_;
  int inotify_ = -1;
  int wd_user_ = -1, wd_shipped_ = -1;
  std::unique_ptr<asio::posix::stream_descriptor> events_;
  std::vector<char> buf_;
  asio::steady_timer timers_;
};

// A script's name: 1-64 of [a-z0-9_-], starting with a letter or digit.
bool validScriptName(const std::string& name);

}  // namespace cw::daemon
