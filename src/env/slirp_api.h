// SlirpApi: a client of slirp4netns's control socket (`--api-socket PATH`), which the "host"
// uplink uses to forward published ports. One JSON request per connection: the daemon sends
// {"execute": ..., "arguments": {...}} and reads {"return": {...}} or {"error": {"desc": ...}}.
//
// A forward listens on the host, in the daemon's own network namespace, and slirp4netns opens a
// new connection to the gateway for each one it accepts, so the cell sees every forwarded
// connection come from slirp's host address (kHostAddress), never from the real client.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>

#include "common/result.h"

namespace cw {

class SlirpApi {
 public:
  // slirp4netns's fixed address for "the host", as the gateway namespace sees it.
  static constexpr const char* kHostAddress = "10.0.2.2";

  explicit SlirpApi(std::filesystem::path socket,
                    std::chrono::milliseconds timeout = std::chrono::seconds(2))
      : socket_(std::move(socket)), timeout_(timeout) {}

  // Listens on host_addr:host_port on the host and forwards to guest_port of the gateway's
  // uplink address. Returns slirp's id for the forward.
  Expected<int> addHostFwd(bool udp, const std::string& host_addr, std::uint16_t host_port,
                           std::uint16_t guest_port);
  Expected<void> removeHostFwd(int id);

  const std::filesystem::path& socket() const { return socket_; }

 private:
  // Sends one request and returns the reply's text.
  Expected<std::string> call(const std::string& request);

  std::filesystem::path socket_;
  std::chrono::milliseconds timeout_;
};

}  // namespace cw
