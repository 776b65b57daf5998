// A VM cell's initramfs pieces (vm/initramfs.h): the newc archive's exact bytes, and the
// order the guest loads its modules in.
#include "vm/initramfs.h"

#include <gtest/gtest.h>

namespace cw::vm {
namespace {

struct Entry {
  std::string name, data;
  std::uint32_t mode = 0, nlink = 0;
};

// Reads a newc archive back, checking what the kernel checks: magic, 4-byte alignment.
std::vector<Entry> readBack(const std::string& a) {
  std::vector<Entry> out;
  std::size_t at = 0;
  auto field = [&](std::size_t i) { return static_cast<std::uint32_t>(std::stoul(a.substr(at + 6 + 8 * i, 8), nullptr, 16)); };
  while (at + 110 <= a.size()) {
    EXPECT_EQ(a.substr(at, 6), "070701");
    EXPECT_EQ(at % 4, 0u);
    Entry e;
    e.mode = field(1);
    e.nlink = field(4);
    auto size = field(6);
    auto namesize = field(11);
    e.name = a.substr(at + 110, namesize - 1);
    EXPECT_EQ(a[at + 110 + namesize - 1], '\0');
    at += 110 + namesize;
    at = (at + 3) / 4 * 4;
    e.data = a.substr(at, size);
    at += size;
    at = (at + 3) / 4 * 4;
    out.push_back(e);
    if (e.name == "TRAILER!!!") break;
  }
  EXPECT_EQ(at, a.size());
  return out;
}

TEST(Cpio, NewcEntriesReadBack) {
  CpioWriter w;
  w.addDirectory("lib");
  w.addFile("init", "#!/bin/busybox sh\n", 0755);
  w.addSymlink("bin/sh", "busybox");
  w.addFile("lib/x", "");
  auto archive = w.finish();
  auto entries = readBack(archive);
  ASSERT_EQ(entries.size(), 5u);
  EXPECT_EQ(entries[0].name, "lib");
  EXPECT_EQ(entries[0].mode, 040755u);
  EXPECT_EQ(entries[0].nlink, 2u);
  EXPECT_EQ(entries[1].name, "init");
  EXPECT_EQ(entries[1].mode, 0100755u);
  EXPECT_EQ(entries[1].data, "#!/bin/busybox sh\n");
  EXPECT_EQ(entries[2].mode, 0120777u);
  EXPECT_EQ(entries[2].data, "busybox");
  EXPECT_EQ(entries[3].data, "");
  EXPECT_EQ(entries[4].name, "TRAILER!!!");
  // The first header, byte for byte: ino 1, directory 0755, two links, namesize 4.
  EXPECT_EQ(archive.substr(0, 110),
            "070701" "00000001" "000041ED" "00000000" "00000000" "00000002" "00000000" "00000000"
            "00000000" "00000000" "00000000" "00000000" "00000004" "00000000");
  EXPECT_EQ(w.finish().size(), 124u);  // a new, empty archive: the trailer alone
}

constexpr const char* kDep =
    "kernel/fs/9p/9p.ko: kernel/fs/fscache/fscache.ko kernel/net/9p/9pnet.ko kernel/fs/netfs/netfs.ko\n"
    "kernel/net/9p/9pnet.ko:\n"
    "kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko kernel/drivers/virtio/virtio.ko "
    "kernel/drivers/virtio/virtio_ring.ko\n"
    "kernel/fs/fscache/fscache.ko: kernel/fs/netfs/netfs.ko\n"
    "kernel/fs/netfs/netfs.ko:\n"
    "kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko\n"
    "kernel/drivers/virtio/virtio_ring.ko:\n"
    "kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko "
    "kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko\n"
    "kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko\n"
    "kernel/net/core/failover.ko:\n"
    "kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n";

TEST(Modules, DependenciesFirstEachOnce) {
  auto deps = parseModulesDep(kDep);
  ASSERT_TRUE(deps) << deps.error().message;
  auto order = moduleLoadOrder(*deps, {"virtio_mmio", "virtio-net", "9pnet_virtio", "9p"});
  ASSERT_TRUE(order) << order.error().message;
  // The load order the spike found by hand (docs/vm-cells.md), derived.
  EXPECT_EQ(*order, (std::vector<std::string>{
                        "kernel/drivers/virtio/virtio_ring.ko", "kernel/drivers/virtio/virtio.ko",
                        "kernel/drivers/virtio/virtio_mmio.ko", "kernel/net/core/failover.ko",
                        "kernel/drivers/net/net_failover.ko", "kernel/drivers/net/virtio_net.ko",
                        "kernel/net/9p/9pnet.ko", "kernel/net/9p/9pnet_virtio.ko", "kernel/fs/netfs/netfs.ko",
                        "kernel/fs/fscache/fscache.ko", "kernel/fs/9p/9p.ko"}));
}

TEST(Modules, BuiltInMissingAndBroken) {
  auto deps = parseModulesDep(kDep);
  ASSERT_TRUE(deps);
  // A kernel with virtio built in needs no file for it.
  auto order = moduleLoadOrder(*deps, {"virtio", "virtio_mmio"}, {"kernel/drivers/virtio/virtio.ko"});
  ASSERT_TRUE(order);
  EXPECT_EQ(order->back(), "kernel/drivers/virtio/virtio_mmio.ko");
  auto missing = moduleLoadOrder(*deps, {"9p", "vsock"});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message, "kernel module vsock is neither in modules.dep nor built in");
  auto cycle = parseModulesDep("a.ko: b.ko\nb.ko: a.ko\n");
  ASSERT_TRUE(cycle);
  EXPECT_FALSE(moduleLoadOrder(*cycle, {"a"}));
  auto dangling = parseModulesDep("a.ko: gone.ko\n");
  ASSERT_TRUE(dangling);
  auto r = moduleLoadOrder(*dangling, {"a"});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("gone.ko"), std::string::npos);
  EXPECT_FALSE(parseModulesDep("no colon here\n"));
}

}  // namespace
}  // namespace cw::vm
