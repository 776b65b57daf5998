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
    const std::string once = cw::api::encodeCommand(*cmd);
    auto again = cw::api::decodeCommand(once);
    if (!again || cw::api::encodeCommand(*again) != once) std::abort();
  }
  auto reply = cw::api::decodeReply(text);
  if (reply) (void)cw::api::encodeReply(*reply);
  return 0;
}
