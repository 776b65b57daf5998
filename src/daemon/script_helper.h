// Scripts in a helper process (ScriptHost::Mode::kHelper): the same ScriptRunner API, but the
// Lua state lives in a process of its own, so nothing a script does (or a bug in Lua) can take
// cellwalld down with it.
//
// The helper is cellwalld's own binary started again as `cellwalld --script-helper`, with one
// end of a SOCK_SEQPACKET socket pair as fd 3 and nothing else inherited. It loads the one
// script it is sent and answers calls until the socket closes. Before the script is compiled it
// confines itself: no new privileges, an empty network namespace (when it can make one), uid
// and gid 65534 when started as root, no core dumps, an address-space limit a little above the
// script's memory cap, and SIGKILL when cellwalld goes away.
//
// Each call waits at most 250 ms for its answer (the script's instruction budget normally stops
// a runaway far sooner). A helper that does not answer in time, answers nonsense, crashes or
// exits is killed and reaped, and its runner is disabled with the reason ("helper process
// killed by signal 11 (SIGSEGV)"), as an in-process script that failed would be.
//
// The protocol is private to one binary (both ends are the same cellwalld), so it is
// native-endian and unversioned.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "daemon/scripts.h"
#include "script/engine.h"

namespace cw::daemon {

// Starts a helper process running one script and returns a ScriptRunner that talks to it. The
// error is the script's load error (as script::Script::load gives it) or why the helper could
// not be started. `self_exe`: the cellwalld binary to run (normally "/proc/self/exe").
// The caller serializes calls on the runner (one at a time); the runner does no locking.
Expected<std::unique_ptr<ScriptRunner>> helperRunner(const std::string& self_exe, const std::string& name,
                                                     const std::string& text, const script::Limits& limits,
                                                     const std::vector<script::Setting>& settings);

// The helper's side: cellwalld's main() calls it when argv[1] is "--script-helper". Serves the
// requests on fd 3 until the socket closes; returns the exit code.
int scriptHelperMain();

// For tests: the pid of the helper process behind a runner, or -1 (not a helper runner, or its
// helper has already been stopped and reaped).
pid_t helperPid(const ScriptRunner& runner);

}  // namespace cw::daemon
