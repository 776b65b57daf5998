// Decodes arbitrary bytes as one OpenFlow message. Whatever decodes must format, re-encode in
// its own version, and decode again to the same value (PacketIn data compared by bytes).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "ofp/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cw::ofp;
  auto first = decode(cw::Bytes(data, size));
  if (!first) {
    (void)errorFor(first.error());
    (void)decodeErrorName(first.error());
    return 0;
  }
  (void)format(*first);
  std::uint8_t v = first->header.version;
  if (v != static_cast<std::uint8_t>(Version::kOf13) && v != static_cast<std::uint8_t>(Version::kOf10)) {
    return 0;  // a HELLO in a version we only negotiate away from
  }
  auto version = static_cast<Version>(v);
  if (!canEncode(version, first->msg)) std::abort();  // everything decoded must be expressible
  std::vector<std::uint8_t> out;
  encode(version, first->header.xid, first->msg, out);
  auto second = decode(out);
  if (!second) std::abort();
  if (!sameMessage(first->msg, second->msg)) std::abort();
  if (second->header.xid != first->header.xid || second->header.type != first->header.type) std::abort();
  return 0;
}
