// What a cell's command gets of the launcher's environment (docs/launcher.md, "The
// environment"): everything but cellwall's and the loader's variables by default; with a clean
// environment only the safe list and the names passed.
#include <gtest/gtest.h>

#include <algorithm>

#include "cell/launcher.h"

namespace cw::cell {
namespace {

const std::vector<std::string> kCaller = {
    "PATH=/usr/bin:/bin",
    "HOME=/root",
    "USER=root",
    "TERM=xterm-256color",
    "LANG=de_DE.UTF-8",
    "LC_TIME=en_GB.UTF-8",
    "TZ=Europe/Berlin",
    "DISPLAY=:0",
    "WAYLAND_DISPLAY=wayland-0",
    "XDG_RUNTIME_DIR=/run/user/1000",
    "XAUTHORITY=/home/alice/.Xauthority",
    "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI",
    "AWS_ACCESS_KEY_ID=AKIA",
    "GITHUB_TOKEN=ghp_x",
    "SSH_AUTH_SOCK=/tmp/ssh-x/agent.1",
    "DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1000/bus",
    "MYAPP_MODE=fast",
    "MYAPP_COLOUR=blue",
    "LD_PRELOAD=/tmp/evil.so",
    "CELLWALL_STATE_DIR=/var/lib/cellwall",
    "SUDO_UID=1000",
    "EMPTY=",
};

bool has(const std::vector<std::string>& env, const std::string& kv) {
  return std::find(env.begin(), env.end(), kv) != env.end();
}

bool hasName(const std::vector<std::string>& env, const std::string& name) {
  return std::any_of(env.begin(), env.end(), [&](const std::string& kv) { return kv.rfind(name + "=", 0) == 0; });
}

TEST(CellEnvironment, ByDefaultEverythingButCellwallsAndTheLoaders) {
  auto env = cellEnvironment(kCaller, "alice", "/home/alice", "/bin/bash", EnvFilter{});
  EXPECT_TRUE(has(env, "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI"));  // today's behaviour, kept
  EXPECT_TRUE(has(env, "SSH_AUTH_SOCK=/tmp/ssh-x/agent.1"));
  EXPECT_TRUE(has(env, "EMPTY="));
  EXPECT_FALSE(hasName(env, "LD_PRELOAD"));
  EXPECT_FALSE(hasName(env, "CELLWALL_STATE_DIR"));
  EXPECT_FALSE(hasName(env, "SUDO_UID"));
  EXPECT_TRUE(has(env, "HOME=/home/alice"));
  EXPECT_FALSE(has(env, "HOME=/root"));
  EXPECT_TRUE(has(env, "USER=alice"));
  EXPECT_TRUE(has(env, "LOGNAME=alice"));
  EXPECT_TRUE(has(env, "SHELL=/bin/bash"));
}

TEST(CellEnvironment, CleanKeepsTheSafeListOnly) {
  auto env = cellEnvironment(kCaller, "alice", "/home/alice", "/bin/bash", EnvFilter{true, {}});
  for (const char* kept : {"PATH=/usr/bin:/bin", "TERM=xterm-256color", "LANG=de_DE.UTF-8", "LC_TIME=en_GB.UTF-8",
                           "TZ=Europe/Berlin", "DISPLAY=:0", "WAYLAND_DISPLAY=wayland-0",
                           "XDG_RUNTIME_DIR=/run/user/1000", "XAUTHORITY=/home/alice/.Xauthority",
                           "HOME=/home/alice", "USER=alice", "LOGNAME=alice", "SHELL=/bin/bash"})
    EXPECT_TRUE(has(env, kept)) << kept;
  for (const char* gone : {"AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "GITHUB_TOKEN", "SSH_AUTH_SOCK",
                           "DBUS_SESSION_BUS_ADDRESS", "MYAPP_MODE", "LD_PRELOAD", "CELLWALL_STATE_DIR",
                           "SUDO_UID", "EMPTY"})
    EXPECT_FALSE(hasName(env, gone)) << gone;
  EXPECT_EQ(env.size(), 13u);
}

TEST(CellEnvironment, CleanPassesNamedVariablesAndPrefixes) {
  auto env = cellEnvironment(kCaller, "alice", "/home/alice", "/bin/bash",
                             EnvFilter{true, {"SSH_AUTH_SOCK", "MYAPP_*", "LD_PRELOAD", "NOT_SET"}});
  EXPECT_TRUE(has(env, "SSH_AUTH_SOCK=/tmp/ssh-x/agent.1"));  // asked for by name
  EXPECT_TRUE(has(env, "MYAPP_MODE=fast"));
  EXPECT_TRUE(has(env, "MYAPP_COLOUR=blue"));
  EXPECT_FALSE(hasName(env, "LD_PRELOAD"));  // the loader's never pass, even when asked
  EXPECT_FALSE(hasName(env, "AWS_SECRET_ACCESS_KEY"));
  EXPECT_FALSE(hasName(env, "NOT_SET"));
}

TEST(CellEnvironment, SafeListHasNoCredentials) {
  for (const char* name : {"PATH", "LANG", "LC_ALL", "LC_CTYPE", "DISPLAY", "WAYLAND_DISPLAY", "XDG_RUNTIME_DIR"})
    EXPECT_TRUE(isSafeEnvName(name)) << name;
  for (const char* name : {"SSH_AUTH_SOCK", "GPG_AGENT_INFO", "AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN",
                           "DBUS_SESSION_BUS_ADDRESS", "LC_", "PATHX", "http_proxy", "KRB5CCNAME"})
    EXPECT_FALSE(isSafeEnvName(name)) << name;
}

}  // namespace
}  // namespace cw::cell
