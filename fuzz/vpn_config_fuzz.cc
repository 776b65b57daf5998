// Fuzzes the VPN configuration readers (env/wg_config.h, env/ovpn_config.h) and the OpenVPN
// up helper's record, whose DNS servers and domains the VPN server chooses (pushed options).
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "env/ovpn_config.h"
#include "env/wg_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)cw::env::parseWgConfig(text, "fuzz.conf");
  (void)cw::env::parseOpenVpnConfig(text, "fuzz.ovpn");
  (void)cw::env::parseOpenVpnUpRecord(text);
  // The same bytes as pushed options, one per line, through the helper and back.
  std::map<std::string, std::string> env;
  int n = 0;
  for (std::size_t start = 0; start <= text.size() && n < 50;) {
    auto nl = text.find('\n', start);
    auto line = text.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start);
    env["foreign_option_" + std::to_string(++n)] = std::string(line);
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  auto record = cw::env::openVpnUpRecord([&](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
  (void)cw::env::parseOpenVpnUpRecord(record);
  return 0;
}
