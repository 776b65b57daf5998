// The watchdog that arms a long call's instruction budget (docs/scripts.md, "Limits").
//
// Lua counts instructions only with a count hook set, and with any hook set its VM calls out
// before every instruction: for a call of a few dozen instructions that is most of its cost.
// So calls into a script start without the hook. A thread of the watchdog's own looks at every
// thread's call in progress once a tick; a call it finds still running a tick later is armed:
// the watchdog signals the thread making it, and the signal handler, on that thread, sets the
// count hook on the Lua thread the call runs (lua_sethook is made to be called from a signal
// handler: lua.c stops a script on Ctrl-C this way). From then on the call's instructions count
// against its budget. While the call goes on, it is signalled again every tick, so a call that
// moved to another Lua thread (a coroutine) is armed there too.
//
// A call is one begin() and end() on the thread making it; calls do not nest.
#pragma once

#include <cstdint>

namespace cw::script::watchdog {

// The tick: a call is armed one to two ticks after it began.
constexpr int kTickMs = 10;

// What a call arms. Called on the call's own thread, from the signal handler, between the call's
// begin() and end().
class Armable {
 public:
  virtual void armFromSignal() noexcept = 0;

 protected:
  ~Armable() = default;
};

// Starts the watchdog (its thread and its signal) if it does not run yet; false if it cannot
// run, in which case a call's budget must be counted from its start (a count hook set for good).
bool start() noexcept;

// A call begins and ends on this thread. false: the watchdog does not watch this call (it does
// not run, or this thread could not be enrolled); the caller arms the call itself.
bool begin(Armable* call) noexcept;
void end() noexcept;

// How many times a call was armed, over the process (for tests and the status line).
std::uint64_t armed() noexcept;

}  // namespace cw::script::watchdog
