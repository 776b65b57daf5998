// The control channel between `cellwall run --vm` and the guest's init (docs/vm-cells.md): one
// byte stream over a virtio-serial port, cut into frames of [type: 1 byte][length: 4 bytes, big
// endian][payload]. The guest says kReady once booted; the host answers with a kStart frame
// (sent then, so that the clock it carries is current) and relays stdin;
// the guest relays stdout and stderr and ends with kExit (or kFailed when the command could not
// start). The guest is untrusted: the host's decoder refuses unknown types and oversized frames.
//
// Built into the host's cellwall and, statically, into the guest's init: the standard library
// only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cw::vm {

enum class FrameType : std::uint8_t {
  // host -> guest
  kStart = 1,     // payload: encodeSpec(); the answer to kReady
  kStdin = 2,     // bytes for the command's stdin
  kStdinEof = 3,  // stdin reached its end
  kWinsize = 4,   // "ROWS COLS": the terminal's size changed (tty mode)
  // guest -> host
  kStdout = 16,
  kStderr = 17,
  kExit = 18,    // "STATUS": shell-style, 128+N for a signal
  kFailed = 19,  // why the command could not be started (one line)
  kReady = 20,   // the guest booted and waits for kStart
};

constexpr std::size_t kMaxFrame = 1 << 20;
constexpr std::size_t kFrameHeader = 5;

std::string encodeFrame(FrameType type, std::string_view payload);

struct Frame {
  FrameType type;
  std::string payload;
};

// Cuts a byte stream into frames. After an error (an unknown type, a frame over kMaxFrame) it
// stays failed: the stream cannot be trusted past it.
class FrameDecoder {
 public:
  void feed(std::string_view bytes);
  // The next complete frame, if any.
  std::optional<Frame> next();
  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }

 private:
  std::string buf_;
  std::size_t pos_ = 0;
  std::string error_;
};

// What the guest's init runs, and the network it gives the guest.
struct GuestSpec {
  std::vector<std::string> argv, env;
  std::uint32_t uid = 65534, gid = 65534;
  std::vector<std::uint32_t> groups;
  std::string cwd = "/";
  std::string ip, gateway;  // dotted quads; the guest's address is a /32 on eth0
  std::uint32_t mtu = 0;    // 0: leave the NIC's
  std::string resolv_conf, hosts;  // the files' text
  bool tty = false;                // give the command a terminal (the host's stdin is one)
  std::uint16_t rows = 0, cols = 0;
  std::int64_t unix_ns = 0;  // the host's clock: the guest has no battery-backed one to trust
  auto operator<=>(const GuestSpec&) const = default;
};

std::string encodeSpec(const GuestSpec& spec);
// nullopt for anything malformed (the guest trusts the host, but a bad frame must not crash it).
std::optional<GuestSpec> decodeSpec(std::string_view payload);

}  // namespace cw::vm
