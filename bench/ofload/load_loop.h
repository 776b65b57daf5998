// The benchmark run: one thread, one epoll loop, one TCP connection per simulated switch.
//
// The loop connects every switch, lets each one handshake, starts its load when it is ready
// (SimSwitch::loadReady), and measures from `warmup` seconds after the last switch started
// until `seconds` later. Replies and Packet-Ins are batched per connection and written once
// per loop turn; sockets get TCP_NODELAY and large buffers so the generator is not what
// limits the rate.
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
