// Internal to src/policy (not part of the contract): what parse.cc refuses and export.cc
// must therefore escape, and the UTF-8 decoder both use.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace cw::policy {

// toml++ 3.3's is_non_ascii_horizontal_whitespace() reaches __builtin_unreachable() for these
// code points (see findTextProblem in parse.cc), so the parser refuses them anywhere in a
// file and the exporter writes them as \uXXXX escapes.
inline bool isToml33Hazard(std::uint32_t cp) {
  return (cp >= 0xa1 && cp <= 0x499) || (cp >= 0x2c5e && cp <= 0x3057 && cp != 0x3000) ||
         (cp >= 0xfb26 && cp <= 0xfefe);
}

// Decodes one well-formed UTF-8 sequence at s[i] (RFC 3629: no overlong forms, no
// surrogates, at most U+10FFFF) into cp. Returns its length (1-4), or 0 if the bytes there
// are not UTF-8. i < s.size().
inline std::size_t decodeUtf8(std::string_view s, std::size_t i, std::uint32_t& cp) {
  auto at = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  auto cont = [&](std::size_t k, unsigned lo = 0x80, unsigned hi = 0xbf) {
    return i + k < s.size() && at(k) >= lo && at(k) <= hi;
  };
  const unsigned c = at(0);
  if (c < 0x80) {
    cp = c;
    return 1;
  }
  if (c >= 0xc2 && c <= 0xdf && cont(1)) {
    cp = ((c & 0x1fu) << 6) | (at(1) & 0x3fu);
    return 2;
  }
  if (c >= 0xe0 && c <= 0xef) {
    const unsigned lo = c == 0xe0 ? 0xa0 : 0x80;  // no overlong forms
    const unsigned hi = c == 0xed ? 0x9f : 0xbf;  // no surrogates
    if (!cont(1, lo, hi) || !cont(2)) return 0;
    cp = ((c & 0x0fu) << 12) | ((at(1) & 0x3fu) << 6) | (at(2) & 0x3fu);
    return 3;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    const unsigned lo = c == 0xf0 ? 0x90 : 0x80;  // no overlong forms
    const unsigned hi = c == 0xf4 ? 0x8f : 0xbf;  // nothing above U+10FFFF
    if (!cont(1, lo, hi) || !cont(2) || !cont(3)) return 0;
    cp = ((c & 0x07u) << 18) | ((at(1) & 0x3fu) << 12) | ((at(2) & 0x3fu) << 6) | (at(3) & 0x3fu);
    return 4;
  }
  return 0;
}

}  // namespace cw::policy
