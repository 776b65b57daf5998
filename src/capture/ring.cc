#include "capture/ring.h"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <utility>

namespace cw::capture {
namespace {

std::string errnoText(int e) {
  return std::strerror(e);
}

// TPACKET_ALIGN, written out (the macro mixes int and size_t).
constexpr std::size_t kAlign = 16;
constexpr std::size_t align16(std::size_t n) {
  return (n + kAlign - 1) & ~(kAlign - 1);
}
// Where a frame's sockaddr_ll sits: after its header, aligned.
constexpr std::size_t kSllOffset = align16(sizeof(tpacket3_hdr));
constexpr std::size_t kFrameHeaderSize = kSllOffset + sizeof(sockaddr_ll);  // TPACKET3_HDRLEN

// MAP_FAILED is a C cast.
void* const kMapFailed = reinterpret_cast<void*>(std::intptr_t{-1});

// Closes the socket unless released: open() has several ways to fail after socket().
struct FdGuard {
  int fd;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
  int release() { return std::exchange(fd, -1); }
};

std::string checkConfig(const RingConfig& cfg) {
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  if (cfg.block_size == 0 || cfg.block_size % page != 0)
    return "block size " + std::to_string(cfg.block_size) + " is not a multiple of the page size " +
           std::to_string(page);
  if (cfg.block_count == 0) return "block count is 0";
  if (cfg.frame_size < kFrameHeaderSize || cfg.frame_size % kAlign != 0 ||
      cfg.block_size % cfg.frame_size != 0)
    return "frame size " + std::to_string(cfg.frame_size) + " must be a multiple of 16, at least " +
           std::to_string(kFrameHeaderSize) + " and divide the block size";
  if (cfg.block_size > 0xffffffffU || cfg.block_count > 0xffffffffU ||
      cfg.block_size / cfg.frame_size * cfg.block_count > 0xffffffffU)
    return "ring too large";
  if (cfg.block_timeout_ms < 0) return "block timeout is negative";
  return {};
}

}  // namespace

Expected<std::unique_ptr<Ring>> Ring::open(const std::string& ifname, RingConfig cfg) {
  const std::string what = "cannot capture on interface " + ifname + ": ";
  if (std::string bad = checkConfig(cfg); !bad.empty()) return fail(what + bad);
  // Looked up first: a missing interface is reported as such, whatever the privileges.
  const unsigned ifindex = ::if_nametoindex(ifname.c_str());
  if (ifindex == 0) return fail(what + "no such interface (" + errnoText(errno) + ")");

  // Protocol 0: the socket receives nothing until bind() names the interface and ETH_P_ALL, so
  // no other interface's frames land in the ring meanwhile.
  FdGuard sock{::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0)};
  if (sock.fd < 0) {
    const int e = errno;
    return fail(
        what + "cannot open a packet socket: " + errnoText(e) +
        (e == EPERM || e == EACCES ? " (this needs CAP_NET_RAW: run as root or grant it)" : ""));
  }
  const int version = TPACKET_V3;
  if (::setsockopt(sock.fd, SOL_PACKET, PACKET_VERSION, &version, sizeof version) != 0)
    return fail(what + "the kernel refuses TPACKET_V3: " + errnoText(errno));
  // Frames the host sends out of the interface are not what it receives (kernel 4.20 and later;
  // older kernels are covered by the pkttype check in drain).
  const int one = 1;
  ::setsockopt(sock.fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);

  tpacket_req3 req{};
  req.tp_block_size = static_cast<unsigned>(cfg.block_size);
  req.tp_block_nr = static_cast<unsigned>(cfg.block_count);
  req.tp_frame_size = cfg.frame_size;
  req.tp_frame_nr = static_cast<unsigned>(cfg.block_size / cfg.frame_size * cfg.block_count);
  req.tp_retire_blk_tov = static_cast<unsigned>(cfg.block_timeout_ms);
  if (::setsockopt(sock.fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) != 0)
    return fail(what + "cannot set up a receive ring of " + std::to_string(cfg.block_count) +
                " blocks of " + std::to_string(cfg.block_size) + " bytes: " + errnoText(errno));
  const std::size_t total = cfg.block_size * cfg.block_count;
  void* map = ::mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED, sock.fd, 0);
  if (map == kMapFailed) return fail(what + "cannot map the receive ring: " + errnoText(errno));

  sockaddr_ll addr{};
  addr.sll_family = AF_PACKET;
  addr.sll_protocol = htons(ETH_P_ALL);
  addr.sll_ifindex = static_cast<int>(ifindex);
  // sockaddr_ll is one of the socket address types bind() takes through sockaddr*.
  if (::bind(sock.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    const int e = errno;
    ::munmap(map, total);
    return fail(what + "cannot bind the packet socket: " + errnoText(e) +
                (e == ENODEV || e == ENXIO ? " (the interface went away)" : ""));
  }
  return std::unique_ptr<Ring>(new Ring(sock.release(), ifname, static_cast<std::uint8_t*>(map),
                                        cfg.block_size, cfg.block_count));
}

Ring::Ring(int fd, std::string ifname, std::uint8_t* map, std::size_t block_size,
           std::size_t block_count)
    : fd_(fd),
      ifname_(std::move(ifname)),
      map_(map),
      block_size_(block_size),
      block_count_(block_count) {}

Ring::~Ring() {
  if (map_ != nullptr) ::munmap(map_, block_size_ * block_count_);
  if (fd_ >= 0) ::close(fd_);
}

std::size_t Ring::drainWith(void* ctx, FrameFn fn) {
  const std::span<std::uint8_t> ring(map_, block_size_ * block_count_);
  std::size_t frames = 0;
  for (std::size_t turn = 0; turn < block_count_; ++turn) {
    const std::span<std::uint8_t> block = ring.subspan(next_ * block_size_, block_size_);
    // The status word is shared with the kernel: read with acquire so the frames written
    // before it was set are seen, and given back with release once they are read.
    std::atomic_ref<std::uint32_t> status(*static_cast<std::uint32_t*>(
        static_cast<void*>(block.data() + offsetof(tpacket_block_desc, hdr.bh1.block_status))));
    if ((status.load(std::memory_order_acquire) & TP_STATUS_USER) == 0) break;
    tpacket_block_desc desc;
    std::memcpy(&desc, block.data(), sizeof desc);

    const tpacket_hdr_v1& bh = desc.hdr.bh1;
    std::size_t off = bh.offset_to_first_pkt;
    for (std::uint32_t i = 0; i < bh.num_pkts; ++i) {
      if (off + kFrameHeaderSize > block.size()) {
        ++stats_.bad_blocks;
        break;
      }
      tpacket3_hdr h;
      std::memcpy(&h, block.data() + off, sizeof h);
      sockaddr_ll sll;
      std::memcpy(&sll, block.data() + off + kSllOffset, sizeof sll);
      if (off + h.tp_mac + std::size_t{h.tp_snaplen} > block.size()) {
        ++stats_.bad_blocks;
        break;
      }
      if (sll.sll_pkttype == PACKET_OUTGOING) {
        ++stats_.outgoing;
      } else {
        fn(ctx, Bytes(block.subspan(off + h.tp_mac, h.tp_snaplen)),
           std::uint64_t{h.tp_sec} * 1'000'000'000U + h.tp_nsec);
        ++frames;
      }
      if (h.tp_next_offset == 0 && i + 1 < bh.num_pkts) {
        ++stats_.bad_blocks;
        break;
      }
      off += h.tp_next_offset;
    }
    status.store(TP_STATUS_KERNEL, std::memory_order_release);
    ++stats_.blocks;
    next_ = (next_ + 1) % block_count_;
  }
  stats_.packets += frames;
  return frames;
}

bool Ring::waitReadable(int timeout_ms) {
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) <= 0) return false;
  if ((p.revents & POLLERR) != 0) {
    // Reading SO_ERROR clears it: a caller polling in a loop is not woken again at once.
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
    ++stats_.errors;
  }
  return (p.revents & POLLIN) != 0;
}

Ring::Stats Ring::stats() const {
  tpacket_stats_v3 k{};
  socklen_t len = sizeof k;
  if (::getsockopt(fd_, SOL_PACKET, PACKET_STATISTICS, &k, &len) == 0) {
    stats_.drops += k.tp_drops;
    stats_.queue_freezes += k.tp_freeze_q_cnt;
  }
  return stats_;
}

}  // namespace cw::capture
