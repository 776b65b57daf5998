// The web UI's secret: 256 random bits, written to a file only its owner can read. Whoever can
// read the file (or ask cellwalld over its owner-only control socket) can use the UI; nobody
// else can, whatever else runs on the machine.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "common/result.h"

namespace cw::web {

// 64 lowercase hex characters from getrandom(2).
Expected<std::string> newToken();

// Replaces `file` with one holding the token and a newline, mode 0600, created afresh (a file
// or link someone left there is never written through).
Expected<void> writeTokenFile(const std::filesystem::path& file, const std::string& token);

// Compares in time that depends only on the lengths.
bool tokenEquals(std::string_view given, std::string_view token);

}  // namespace cw::web
