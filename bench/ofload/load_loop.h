// The benchmark run: one thread, one epoll loop, one TCP connection per simulated switch.
//
// The loop connects every switch, lets each one handshake, starts its load when it is ready
// (SimSwitch::loadReady), and measures from `warmup` seconds after the last switch started
// until `seconds` later. Replies and Packet-Ins are batched per connection and written once
// per loop turn; sockets get TCP_NODELAY and large buffers so the generator is not what
// limits the rate.
//
// A round trip runs from just before the send() that writes the Packet-In to just after the
// recv() that returns the reply, so the loop's own work between them is not counted. How the
// loop waits (Options::wait) still is, as a wake-up: epoll_wait (any number of switches), a
// blocking recv() on the only socket, or busy polling that never sleeps.
//
// Errors: kConnect when a switch cannot connect (the controller is not there); kRuntime when
// the controller closes a connection, sends something undecodable, or a switch does not get
// through the handshake in time. All sockets are closed on return either way.
#pragma once

#include <string>

#include "common/result.h"
#include "options.h"
#include "report.h"

namespace cw::ofload {

enum class RunFailure { kConnect, kRuntime };
struct RunError {
  RunFailure kind = RunFailure::kRuntime;
  std::string message;
};

Result<RunResult, RunError> runLoad(const Options& opts);

}  // namespace cw::ofload
