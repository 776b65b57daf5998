// Fuzzes the command codec (api/commands.h): every command of the control socket and of the
// web UI's POST /api is decoded by it. A decoded command must encode to a line that decodes to
// the same command again.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "api/commands.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto cmd = cw::api::decodeCommand(text);
  if (cmd) {
    // A decoded command holds only valid UTF-8 (the JSON parser checks), so it always encodes.
    auto once = cw::api::encodeCommand(*cmd);
    if (!once) std::abort();
    auto again = cw::api::decodeCommand(*once);
    if (!again) std::abort();
    auto twice = cw::api::encodeCommand(*again);
    if (!twice || *twice != *once) std::abort();
  }
  auto reply = cw::api::decodeReply(text);
  if (reply) (void)cw::api::encodeReply(*reply);
  return 0;
}
