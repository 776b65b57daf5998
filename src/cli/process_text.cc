#include "cli/process_text.h"

#include <cstdint>
#include <cstdio>

namespace cw::cli {

namespace {

constexpr std::string_view kDeleted = " (deleted)";
constexpr std::string_view kCut = "...";

// Code points a terminal or a text widget acts on instead of showing: controls, line and
// paragraph separators, and the bidi marks and overrides that reorder what follows them.
bool hidden(std::uint32_t cp) {
  return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x061c || cp == 0x200e || cp == 0x200f ||
         (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

// The length of the well-formed UTF-8 sequence at s[i] (with its code point), or 0.
std::size_t utf8At(std::string_view s, std::size_t i, std::uint32_t& cp) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  if (c < 0x80) {
    cp = c;
    return 1;
  }
  std::size_t n = 0;
  unsigned char lo = 0x80, hi = 0xbf;  // the second byte's range (no overlongs, no surrogates)
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
    cp = c & 0x1fu;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    cp = c & 0x0fu;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    cp = c & 0x07u;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;
  } else {
    return 0;
  }
  if (i + n > s.size() || b(1) < lo || b(1) > hi) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    if ((b(k) & 0xc0u) != 0x80u) return 0;
    cp = (cp << 6) | (b(k) & 0x3fu);
  }
  return n;
}

// Appends s made printable, whole characters and escapes only, while out stays within `max`
// bytes (0: no bound); false if it had to stop.
bool appendPrintable(std::string& out, std::string_view s, std::size_t max) {
  char esc[16];
  for (std::size_t i = 0; i < s.size();) {
    std::uint32_t cp = 0;
    const std::size_t n = utf8At(s, i, cp);
    std::string_view unit;
    if (n == 0) {
      std::snprintf(esc, sizeof esc, "\\x%02x", static_cast<unsigned>(static_cast<unsigned char>(s[i])));
      unit = esc;
    } else if (hidden(cp)) {
      if (cp < 0x80)
        std::snprintf(esc, sizeof esc, "\\x%02x", static_cast<unsigned>(cp));
      else
        std::snprintf(esc, sizeof esc, "\\u{%04x}", static_cast<unsigned>(cp));
      unit = esc;
    } else {
      unit = s.substr(i, n);
    }
    if (max != 0 && out.size() + unit.size() > max) return false;
    out.append(unit);
    i += n == 0 ? 1 : n;
  }
  return true;
}

std::string_view withoutDeleted(std::string_view exe) {
  if (exe.size() > kDeleted.size() && exe.substr(exe.size() - kDeleted.size()) == kDeleted)
    exe.remove_suffix(kDeleted.size());
  return exe;
}

std::string_view baseName(std::string_view path) {
  const auto slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

// A name in brackets: cellwalld's stand-in for the exe of a process gone before it was read.
bool isPlaceholder(std::string_view exe) { return !exe.empty() && exe.front() == '['; }

// What the process runs, unescaped: see the header.
std::string commandOf(const api::ProcessRef& p) {
  std::string_view cmd = p.cmdline;
  const std::string_view exe = p.exe;
  if (exe.empty() || isPlaceholder(exe)) return std::string(cmd);
  if (cmd.empty()) return std::string(exe);
  // argv is joined by spaces: argv[0] is taken to end at the first one.
  const auto space = cmd.find(' ');
  const std::string_view argv0 = cmd.substr(0, space);
  const std::string_view args = space == std::string_view::npos ? std::string_view{} : cmd.substr(space);
  const std::string_view real = withoutDeleted(exe);
  std::string out(exe);
  if (argv0 == real || baseName(argv0) == baseName(real)) {
    out += args;
  } else {
    out += " (argv: ";
    out += cmd;
    out += ')';
  }
  return out;
}

}  // namespace

std::string printable(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  appendPrintable(out, s, 0);
  return out;
}

std::string processName(const api::ProcessRef& p) {
  if (p.pid == 0) return {};
  if (!p.exe.empty()) return printable(isPlaceholder(p.exe) ? p.exe : baseName(withoutDeleted(p.exe)));
  const std::string_view cmd = p.cmdline;
  return printable(baseName(cmd.substr(0, cmd.find(' '))));
}

std::string processText(const api::ProcessRef& p, std::size_t max_command) {
  if (p.pid == 0) return printable(p.note);
  std::string out = processName(p);
  if (out.empty()) out.push_back('?');  // push_back: g++ 12 -O3 sees a false -Wrestrict in = "?"
  out.append(" (pid ").append(std::to_string(p.pid));
  if (!p.user.empty())
    out.append(", user ").append(printable(p.user));
  else
    out.append(", uid ").append(std::to_string(p.uid));
  if (p.exited) out.append(", exited");
  out.append(")");
  const std::string cmd = commandOf(p);
  if (cmd.empty()) return out;
  out.append(": ");
  const std::size_t bound = max_command == 0 ? 0 : out.size() + max_command;
  if (!appendPrintable(out, cmd, bound == 0 ? 0 : bound - kCut.size())) out.append(kCut);
  return out;
}

}  // namespace cw::cli
