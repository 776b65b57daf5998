// How the command line names the process behind a connection (api::ProcessRef) in `cellwall
// log`, `cellwall prompt` and desktop notifications: one form everywhere,
//   curl (pid 1234, user alice): /usr/bin/curl -s http://example.org/
// the name first (the executable's file name), then who, then what it runs. The executable's
// full path stands in for argv[0] when argv[0] names the same program; when it does not (a
// multi-call binary, a process that renamed itself) both are shown:
//   busybox (pid 7, uid 1000): /bin/busybox (argv: wget -q http://example.org/)
// A process gone before it was read: "[curl] (pid 1234, user alice, exited)". No process
// (pid 0): why, when cellwalld knows it ("not visible (VM cell)"), and nothing otherwise.
//
// The command line is whatever the process put in its argv: it is made safe to print (control
// characters, invalid UTF-8 and bidirectional overrides shown as escapes, so it cannot move the
// cursor, recolour the terminal or reorder what is shown) and cut at `max_command` bytes;
// `--json` has it whole.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "api/commands.h"

namespace cw::cli {

// For pid 0 the note (ProcessRef::note), "" when there is none.
std::string processText(const api::ProcessRef& p, std::size_t max_command = 0);
// The short name: the executable's file name ("curl", "[curl]" when exited); "" for pid 0.
std::string processName(const api::ProcessRef& p);
// s with C0/C1 controls, DEL, bidi controls and bytes that are not UTF-8 written as \xNN or
// \u{NNNN}: what a terminal or a notification server shows as text and nothing else.
std::string printable(std::string_view s);

}  // namespace cw::cli
