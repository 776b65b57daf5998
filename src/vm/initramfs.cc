#include "vm/initramfs.h"

#include <cstdio>
#include <functional>
#include <set>
#include <utility>

namespace cw::vm {

namespace {

constexpr std::uint32_t kDirectory = 0040000;
constexpr std::uint32_t kRegular = 0100000;
constexpr std::uint32_t kSymlink = 0120000;

void pad4(std::string& s) {
  while (s.size() % 4 != 0) s.push_back('\0');
}

// "kernel/drivers/net/virtio_net.ko" -> "virtio_net"; '-' as '_', as the kernel does.
std::string moduleName(std::string_view path) {
  auto slash = path.rfind('/');
  if (slash != std::string_view::npos) path.remove_prefix(slash + 1);
  for (std::string_view ext : {".ko.xz", ".ko.zst", ".ko.gz", ".ko"})
    if (path.size() > ext.size() && path.substr(path.size() - ext.size()) == ext) {
      path.remove_suffix(ext.size());
      break;
    }
  std::string name(path);
  for (auto& c : name)
    if (c == '-') c = '_';
  return name;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

}  // namespace

void CpioWriter::entry(std::string_view path, std::uint32_t mode, std::string_view data) {
  char header[111];
  // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor,
  // rdevminor, namesize (with its NUL), check.
  std::snprintf(header, sizeof header, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X", ino_++, mode,
                0u, 0u, (mode & kDirectory) == kDirectory ? 2u : 1u, 0u, static_cast<std::uint32_t>(data.size()), 0u,
                0u, 0u, 0u, static_cast<std::uint32_t>(path.size() + 1), 0u);
  out_.append(header, 110);
  out_.append(path).push_back('\0');
  pad4(out_);
  out_.append(data);
  pad4(out_);
}

void CpioWriter::addDirectory(std::string_view path, std::uint32_t mode) { entry(path, kDirectory | (mode & 07777), {}); }

void CpioWriter::addFile(std::string_view path, std::string_view data, std::uint32_t mode) {
  entry(path, kRegular | (mode & 07777), data);
}

void CpioWriter::addSymlink(std::string_view path, std::string_view target) { entry(path, kSymlink | 0777, target); }

std::string CpioWriter::finish() {
  ino_ = 0;  // the trailer's
  entry("TRAILER!!!", 0, {});
  ino_ = 1;
  return std::exchange(out_, {});
}

Expected<ModuleDeps> parseModulesDep(std::string_view text) {
  ModuleDeps deps;
  std::size_t line_no = 0;
  while (!text.empty()) {
    auto nl = text.find('\n');
    auto line = trim(text.substr(0, nl));
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    ++line_no;
    if (line.empty()) continue;
    auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0)
      return fail("modules.dep:" + std::to_string(line_no) + ": expected MODULE: DEPENDENCIES");
    auto& list = deps[std::string(trim(line.substr(0, colon)))];
    auto rest = line.substr(colon + 1);
    while (!(rest = trim(rest)).empty()) {
      auto end = rest.find_first_of(" \t");
      list.emplace_back(rest.substr(0, end));
      rest.remove_prefix(end == std::string_view::npos ? rest.size() : end);
    }
  }
  return deps;
}

Expected<std::vector<std::string>> moduleLoadOrder(const ModuleDeps& deps, const std::vector<std::string>& wanted,
                                                   const std::vector<std::string>& builtin) {
  std::map<std::string, std::string> by_name;  // name -> path
  for (const auto& [path, unused] : deps) by_name.emplace(moduleName(path), path);
  std::set<std::string> built_in;
  for (const auto& b : builtin) built_in.insert(moduleName(b));
  std::vector<std::string> order;
  std::set<std::string> done, visiting;
  std::string error;
  // Depth first: a module's dependencies before it. modules.dep lists every module's whole
  // closure already, but in no guaranteed order, so each is visited for its own.
  std::function<void(const std::string&)> visit = [&](const std::string& path) {
    if (!error.empty() || done.count(path) != 0) return;
    if (!visiting.insert(path).second) {
      error = "modules.dep has a dependency cycle through " + path;
      return;
    }
    auto it = deps.find(path);
    if (it == deps.end()) {
      error = "modules.dep names " + path + " as a dependency but has no line for it";
      return;
    }
    for (const auto& d : it->second) visit(d);
    visiting.erase(path);
    if (done.insert(path).second) order.push_back(path);
  };
  for (const auto& w : wanted) {
    auto name = moduleName(w);
    if (built_in.count(name) != 0) continue;
    auto it = by_name.find(name);
    if (it == by_name.end()) return fail("kernel module " + name + " is neither in modules.dep nor built in");
    visit(it->second);
    if (!error.empty()) return fail(error);
  }
  return order;
}

}  // namespace cw::vm
