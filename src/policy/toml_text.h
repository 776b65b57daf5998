// Internal to src/policy (not part of the contract): what parse.cc refuses and export.cc
// must therefore escape.
#pragma once

#include <cstdint>

namespace cw::policy {

// toml++ 3.3's is_non_ascii_horizontal_whitespace() reaches __builtin_unreachable() for these
// code points (see findToml33Hazard in parse.cc), so the parser refuses them anywhere in a
// file and the exporter writes them as \uXXXX escapes.
inline bool isToml33Hazard(std::uint32_t cp) {
  return (cp >= 0xa1 && cp <= 0x499) || (cp >= 0x2c5e && cp <= 0x3057 && cp != 0x3000) ||
         (cp >= 0xfb26 && cp <= 0xfefe);
}

}  // namespace cw::policy
