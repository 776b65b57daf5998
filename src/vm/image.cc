#include "vm/image.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

#include "common/file.h"
#include "vm/initramfs.h"

namespace cw::vm {

namespace fs = std::filesystem;

const char* const kGuestModules[] = {"virtio_mmio", "virtio_net", "virtio_console", "9pnet_virtio", "9p", "overlay",
                                     nullptr};

namespace {

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

// Runs `argv` with stdin from `in` and stdout to `out`; true if it exits 0.
bool runFiltered(const std::vector<std::string>& argv, const fs::path& in, const fs::path& out) {
  int ifd = ::open(in.c_str(), O_RDONLY | O_CLOEXEC);
  int ofd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  pid_t pid = (ifd >= 0 && ofd >= 0) ? ::fork() : -1;
  if (pid == 0) {
    ::dup2(ifd, 0);
    ::dup2(ofd, 1);
    int null = ::open("/dev/null", O_WRONLY);
    if (null >= 0) ::dup2(null, 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  if (ifd >= 0) ::close(ifd);
  if (ofd >= 0) ::close(ofd);
  int status = 0;
  return pid > 0 && ::waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace

Expected<std::string> ensureVmlinux(const GuestKernel& kernel, const std::string& cache_dir) {
  fs::path out = fs::path(cache_dir) / ("vmlinux-" + kernel.version);
  std::error_code ec;
  if (fs::exists(out, ec)) return out.string();
  auto image = readTextFile(kernel.image);
  if (!image) return Unexpected(image.error());
  fs::create_directories(cache_dir, ec);
  if (ec) return fail("cannot create " + cache_dir + ": " + ec.message());
  struct Format {
    std::string_view magic;
    std::vector<std::string> argv;
  };
  const Format formats[] = {
      {std::string_view("\xfd" "7zXZ\0", 6), {"xz", "-dc", "--single-stream"}},
      {std::string_view("\x28\xb5\x2f\xfd", 4), {"zstd", "-dcq"}},
      {std::string_view("\x1f\x8b\x08\x00", 4), {"gzip", "-dc"}},
  };
  const std::string tag = ".tmp" + std::to_string(::getpid());
  fs::path payload = out, elf = out;
  payload += tag + ".in";
  elf += tag;
  std::string tried;
  for (const auto& f : formats) {
    // The first place the magic appears is the payload (later ones may be inside it).
    auto at = image->find(f.magic);
    if (at == std::string::npos) continue;
    tried += (tried.empty() ? "" : ", ") + f.argv[0];
    {
      std::ofstream p(payload, std::ios::binary | std::ios::trunc);
      p.write(image->data() + at, static_cast<std::streamsize>(image->size() - at));
    }
    // gzip and zstd complain about what follows the payload but write it whole: the ELF
    // header decides.
    (void)runFiltered(f.argv, payload, elf);
    std::ifstream e(elf, std::ios::binary);
    char head[4] = {};
    e.read(head, 4);
    if (std::string_view(head, 4) == std::string_view("\x7f" "ELF", 4)) {
      fs::remove(payload, ec);
      fs::rename(elf, out, ec);
      if (ec) return fail("cannot write " + out.string() + ": " + ec.message());
      return out.string();
    }
  }
  fs::remove(payload, ec);
  fs::remove(elf, ec);
  return fail(kernel.image + ": no compressed kernel found in it" + (tried.empty() ? "" : " (tried " + tried + ")"));
}

Expected<std::string> ensureInitramfs(const GuestKernel& kernel, const std::string& init_path,
                                      const std::string& cache_dir) {
  struct stat st {};
  if (::stat(init_path.c_str(), &st) != 0)
    return fail("the VM guest's init " + init_path + " is missing (it is built with cellwall)");
  // Named after what goes in: the kernel, the init, the module list.
  std::uint32_t modules_hash = 2166136261U;  // FNV-1a
  for (const char* const* m = kGuestModules; *m != nullptr; ++m)
    for (const char* c = *m; *c != '\0'; ++c) modules_hash = (modules_hash ^ static_cast<unsigned char>(*c)) * 16777619U;
  fs::path out = fs::path(cache_dir) / ("initramfs-" + kernel.version + "-" + std::to_string(st.st_size) + "-" +
                                        std::to_string(st.st_mtim.tv_sec) + "-" + std::to_string(modules_hash) + ".cpio");
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
  auto init = readTextFile(init_path);
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
    auto data = readTextFile(fs::path(kernel.modules_dir) / path);
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
