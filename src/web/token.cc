#include "web/token.h"

#include <sys/random.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "common/file.h"

namespace cw::web {

Expected<std::string> newToken() {
  std::array<unsigned char, 32> raw{};
  std::size_t got = 0;
  while (got < raw.size()) {
    ssize_t n = ::getrandom(raw.data() + got, raw.size() - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(std::string("getrandom: ") + std::strerror(errno));
    }
    got += static_cast<std::size_t>(n);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(raw.size() * 2);
  for (unsigned char b : raw) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

Expected<void> writeTokenFile(const std::filesystem::path& file, const std::string& token) {
  using std::filesystem::perms;
  return writeFileAtomically(file, token + "\n", perms::owner_read | perms::owner_write);
}

bool tokenEquals(std::string_view given, std::string_view token) {
  if (given.size() != token.size() || token.empty()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < token.size(); ++i)
    diff |= static_cast<unsigned char>(given[i] ^ token[i]);
  return diff == 0;
}

}  // namespace cw::web
