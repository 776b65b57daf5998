// The OpenFlow channel: listens for switches on a UNIX socket, on mutual TLS and (only when
// configured) on plain TCP; runs the handshake, keepalive, xid tracking and barriers, and shards
// connections over worker threads (one event loop each) so that a Packet-In burst from one
// switch cannot stall switches on other threads, and a busy connection yields to others on its
// own thread after each read batch.
//
// Authentication: every connection carries how it proved itself (Auth, switch.h). A UNIX peer
// must run as one of unix_peer_uids (SO_PEERCRED), else it is closed at once; a TLS peer must
// present a certificate signed by tls_ca; a plain TCP peer proves nothing. Which connection may
// hold a datapath id is decided by admit() (admission.h): a weaker connection never takes an id
// from a stronger one, and never takes an id whose floor (dpid_floor, or the strongest
// authentication that ever held it) is above it. Refusals are counted (refused()) and logged
// at most once a second per kind; a replacement is logged at warning level with both peers.
//
// Errors: listen and TLS setup failures come back from start(); a switch that fails the TLS
// handshake is logged (rate-limited) and never becomes a switch; malformed messages get an OpenFlow ERROR,
// are counted per DecodeError and logged at most once a second; a connection is closed only
// when framing is lost (length < 8), the switch stops answering echoes, or its datapath id is
// refused.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "switch/switch.h"

namespace cw::sw {

struct ServerOptions {
  std::string tcp_address = "127.0.0.1";
  // Plain TCP, unauthenticated: any local user can claim any datapath id there (though never
  // one held or reserved by an authenticated connection). 0: no TCP listener.
  std::uint16_t tcp_port = 0;
  std::string unix_path;          // empty: no UNIX listener; the file is made mode 0600
  // The uids a UNIX peer may run as (SO_PEERCRED); anyone else is closed before the handshake.
  std::vector<std::uint32_t> unix_peer_uids{0};
  // If set, the UNIX socket file is given to this uid (an Open vSwitch running as its own user
  // must be able to connect to it); list it in unix_peer_uids too.
  std::optional<std::uint32_t> unix_owner_uid;
  // Datapath ids that only a connection authenticated at least this well may hold, from the
  // start (the controller's own bridge: before it first connects, nobody weaker may claim it).
  std::unordered_map<std::uint64_t, Auth> dpid_floor;
  // TLS (mutual, as Open vSwitch does it): the controller presents tls_cert/tls_key and
  // requires every switch to present a certificate signed by tls_ca. 0: no TLS listener.
  std::uint16_t tls_port = 0;
  std::string tls_cert, tls_key, tls_ca;
  unsigned threads = 0;           // 0: one per core
  unsigned echo_interval_sec = 5;
  unsigned echo_timeout_sec = 15;
  unsigned handshake_timeout_sec = 30;
  int listen_backlog = 1024;
  bool offer_of10 = true;
};

class SwitchServer {
 public:
  SwitchServer(ServerOptions options, SwitchHandler& handler);
  ~SwitchServer();
  SwitchServer(const SwitchServer&) = delete;
  SwitchServer& operator=(const SwitchServer&) = delete;

  // Binds the listeners and starts the worker threads.
  Expected<void> start();
  // Closes listeners and connections, joins the threads. Idempotent.
  void stop();

  // The connected switch with this datapath id, or nullptr. Any thread.
  std::shared_ptr<Switch> find(std::uint64_t dpid) const;
  std::vector<std::shared_ptr<Switch>> all() const;
  std::uint16_t tcpPort() const;  // the bound plain TCP port, 0 if none

  // Runs fn once on every worker thread (each event loop), whether or not a switch is pinned
  // to it now: for per-thread state such as the packet path's view reader. Any thread; after
  // start() and before stop().
  void postToEveryThread(const std::function<void()>& fn);
  unsigned threadCount() const;

  // Decode errors by DecodeError, summed over all connections. Any thread.
  std::vector<std::uint64_t> decodeErrorCounts() const;

  // Connections refused so far. Any thread.
  struct Refused {
    std::uint64_t peer_credentials = 0;  // UNIX peers running as a uid not in unix_peer_uids
    std::uint64_t takeovers = 0;         // datapath ids claimed by a connection admit() refused
  };
  Refused refused() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cw::sw
