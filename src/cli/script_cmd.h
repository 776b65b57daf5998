// `cellwall script list|status|load|unload|reload` (docs/scripts.md).
#pragma once

#include <string>

#include "cli/client.h"

namespace cw::cli {

int scriptList(Client& c, bool json);
// One script in detail (every script when name is empty): state, counters, recent log lines.
int scriptStatus(Client& c, const std::string& name, bool json);
// name "": the file's name without .lua.
int scriptLoad(Client& c, const std::string& file, std::string name, bool helper);
int scriptUnload(Client& c, const std::string& name);
int scriptReload(Client& c, const std::string& name);

}  // namespace cw::cli
