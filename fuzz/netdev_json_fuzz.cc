// Fuzzes the parsers of `ip -json` output (netdev/net_ops.h): they read what iproute2 prints
// about interfaces whose names a cell may influence.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "netdev/net_ops.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)cw::parseLinkList(text);
  (void)cw::parseNetnsList(text);
  (void)cw::IfAddress::parse(text);
  return 0;
}
