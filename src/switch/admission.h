// Which connection may hold a datapath id. Switches are keyed by datapath id, and the id is
// only what the switch claims in FEATURES_REPLY, so the claim is weighed by how the connection
// was authenticated (Auth in switch.h):
//
//   - a connection never takes a datapath id from one authenticated more strongly: plain TCP
//     never replaces TLS or the UNIX socket, TLS never replaces the UNIX socket;
//   - a datapath id has a floor, the strongest authentication that ever held it (or that the
//     controller required from the start): a weaker connection is refused even while the id
//     is free, so the gap while Open vSwitch restarts is no opening either;
//   - an equal or stronger connection replaces the holder (a restarted switch reconnecting
//     before its old connection timed out); the server logs it with both peers.
//
// Pure: no I/O, no locks; the server calls it under its own lock.
#pragma once

#include <optional>

#include "switch/switch.h"

namespace cw::sw {

enum class Admission {
  kAdmit,    // the id was free: the connection becomes the switch
  kReplace,  // the connection becomes the switch and the holder is closed
  kRefuse,   // the connection is closed; the holder (if any) keeps the id
};

// held: the authentication of the connection holding the id now, if any. min_auth: the id's
// floor, the weakest authentication it still accepts.
constexpr Admission admit(Auth incoming, std::optional<Auth> held, Auth min_auth) {
  if (incoming < min_auth) return Admission::kRefuse;
  if (!held) return Admission::kAdmit;
  return incoming < *held ? Admission::kRefuse : Admission::kReplace;
}

}  // namespace cw::sw
