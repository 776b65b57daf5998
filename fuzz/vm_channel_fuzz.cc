// Fuzzes the VM control channel (vm/channel.h): the launcher decodes whatever a VM cell's guest
// sends, and the guest is untrusted. The input is cut at its first byte's value into two feeds,
// so frames split across reads are covered; a spec that decodes must encode to the same spec.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "vm/channel.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  cw::vm::FrameDecoder d;
  std::size_t cut = in.empty() ? 0 : static_cast<unsigned char>(in[0]) % (in.size() + 1);
  d.feed(in.substr(0, cut));
  while (d.next()) {
  }
  d.feed(in.substr(cut));
  while (auto f = d.next())
    if (f->payload.size() > cw::vm::kMaxFrame) std::abort();
  if (auto spec = cw::vm::decodeSpec(in)) {
    auto again = cw::vm::decodeSpec(cw::vm::encodeSpec(*spec));
    if (!again || !(*again == *spec)) std::abort();
  }
  return 0;
}
