#include "vm/image.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "common/file.h"
#include "vm/initramfs.h"

namespace cw::vm {

namespace fs = std::filesystem;

const char* const kGuestModules[] = {"virtio_mmio", "virtio_net", "virtio_console", "9pnet_virtio", "9p", nullptr};

namespace {

Expected<std::string> readBinary(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return fail("cannot read " + p.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> builtinModules(const fs::path& dir) {
  std::vector<std::string> names;
  auto text = readTextFile(dir / "modules.builtin");
  if (!text) return names;
  std::istringstream in(*text);
  for (std::string line; std::getline(in, line);) {
    auto slash = line.rfind('/');
    std::string name = line.substr(slash == std::string::npos ? 0 : slash + 1);
    if (name.ends_with(".ko")) name.resize(name.size() - 3);
    for (auto& c : name)
      if (c == '-') c = '_';
    names.push_back(name);
  }
  return names;
}

}  // namespace

Expected<std::string> ensureInitramfs(const GuestKernel& kernel, const std::string& init_path,
                                      const std::string& cache_dir) {
  struct stat st {};
  if (::stat(init_path.c_str(), &st) != 0)
    return fail("the VM guest's init " + init_path + " is missing (it is built with cellwall)");
  fs::path out = fs::path(cache_dir) / ("initramfs-" + kernel.version + "-" + std::to_string(st.st_size) + "-" +
                                        std::to_string(st.st_mtim.tv_sec) + ".cpio");
  std::error_code ec;
  if (fs::exists(out, ec)) return out.string();

  auto dep_text = readTextFile(fs::path(kernel.modules_dir) / "modules.dep");
  if (!dep_text) return fail("kernel " + kernel.version + ": " + dep_text.error().message);
  auto deps = parseModulesDep(*dep_text);
  if (!deps) return Unexpected(deps.error());
  std::vector<std::string> wanted;
  for (const char* const* m = kGuestModules; *m != nullptr; ++m) wanted.emplace_back(*m);
  auto order = moduleLoadOrder(*deps, wanted, builtinModules(kernel.modules_dir));
  if (!order) return fail("kernel " + kernel.version + ": " + order.error().message);
  auto init = readBinary(init_path);
  if (!init) return Unexpected(init.error());

  CpioWriter cpio;
  for (const char* d : {"dev", "proc", "sys", "host", "lib", "lib/modules"}) cpio.addDirectory(d);
  cpio.addFile("init", *init, 0755);
  std::set<std::string> dirs;
  for (const auto& path : *order) {
    // Every directory on the way, once: the writer wants a directory before what it holds.
    for (std::size_t slash = path.find('/'); slash != std::string::npos; slash = path.find('/', slash + 1)) {
      std::string dir = "lib/modules/" + path.substr(0, slash);
      if (dirs.insert(dir).second) cpio.addDirectory(dir);
    }
    auto data = readBinary(fs::path(kernel.modules_dir) / path);
    if (!data) return Unexpected(data.error());
    cpio.addFile("lib/modules/" + path, *data);
  }
  std::string modules;
  for (const auto& path : *order) modules += path + "\n";
  cpio.addFile("modules", modules);

  fs::create_directories(cache_dir, ec);
  if (ec) return fail("cannot create " + cache_dir + ": " + ec.message());
  ::chmod(cache_dir.c_str(), 0755);
  fs::path tmp = out;
  tmp += ".tmp" + std::to_string(::getpid());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << cpio.finish();
    if (!f.flush()) return fail("cannot write " + tmp.string());
  }
  ::chmod(tmp.c_str(), 0644);
  fs::rename(tmp, out, ec);
  if (ec) return fail("cannot write " + out.string() + ": " + ec.message());
  return out.string();
}

}  // namespace cw::vm
