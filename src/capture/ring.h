// A TPACKET_V3 receive ring on one interface (docs/attribution.md, "The IDS": cellwalld reads
// the copy of cells' egress from the peer of the monitor veth cw-ids0).
//
// The kernel writes received frames into blocks of a memory area shared with us (PACKET_RX_RING)
// and hands a block over when it is full or when `block_timeout_ms` has passed since its first
// frame; reading a frame is then a memory read, not a system call. drain() walks the blocks the
// kernel has handed over, in order, and gives each back once its frames have been passed on.
//
// Only frames the interface *receives* are read: the socket is opened with
// PACKET_IGNORE_OUTGOING, and frames marked PACKET_OUTGOING are skipped as well in case the
// kernel still delivers any, so a frame the host sends out of that interface is never counted
// as traffic arriving on it.
//
// Ownership and lifetime: a Ring owns its socket and its mapping; both are released by the
// destructor. A frame's bytes are only valid during the callback that receives them (the block
// is given back to the kernel right after): copy what must outlive it.
//
// Threading: one thread at a time (drain, poll and stats mutate the ring's position and
// counters). fd() may be handed to an event loop that calls drain() when it is readable.
//
// Errors: open() returns what failed, on which interface, and what to do; after that, reading
// cannot fail (a malformed block, which the kernel never writes, is given back unread and
// counted in Stats::bad_blocks).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "common/bytes.h"
#include "common/result.h"

namespace cw::capture {

struct RingConfig {
  // Bytes per block: a multiple of the page size. A frame never spans blocks, so the largest
  // frame is a little under one block.
  std::size_t block_size = std::size_t{1} << 20;
  std::size_t block_count = 16;
  // The kernel's nominal frame slot (a multiple of 16 dividing block_size). TPACKET_V3 packs
  // frames by their real size; this only fixes the frame count the kernel is told.
  std::uint32_t frame_size = 2048;
  // A block that is not full is handed over this long after its first frame.
  int block_timeout_ms = 10;
};

class Ring {
 public:
  struct Stats {
    std::uint64_t packets = 0;        // frames passed to a callback
    std::uint64_t blocks = 0;         // blocks read and given back
    std::uint64_t drops = 0;          // frames the kernel dropped: the ring was full (tp_drops)
    std::uint64_t queue_freezes = 0;  // times the ring was full (tp_freeze_q_cnt)
    std::uint64_t outgoing = 0;       // frames skipped because the host sent them
    std::uint64_t bad_blocks = 0;     // blocks whose layout did not fit their size (never expected)
    std::uint64_t errors = 0;         // socket errors seen by poll() (ENETDOWN: the interface went)
  };

  // Opens an AF_PACKET socket on `ifname` (after it is bound it sees that interface only),
  // switches it to TPACKET_V3 and maps its receive ring. Needs CAP_NET_RAW; without it the
  // error says so. Fails on an interface that does not exist, or a config the kernel cannot
  // take (each named in the message).
  static Expected<std::unique_ptr<Ring>> open(const std::string& ifname, RingConfig cfg = {});

  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;
  ~Ring();

  // Readable (POLLIN) when the kernel has handed a block over.
  int fd() const { return fd_; }
  const std::string& interface() const { return ifname_; }

  // Calls fn(Bytes frame, std::uint64_t ts_ns) for each frame, from its Ethernet header on, in
  // every block the kernel has handed over; ts_ns is the kernel's receive time (CLOCK_REALTIME,
  // ns). Never blocks. Returns the number of frames passed to fn. At most one turn of the ring
  // is read per call, so a busy interface cannot keep a caller here for ever.
  template <class F>
  std::size_t drain(F&& fn) {
    using Fn = std::remove_reference_t<F>;
    // A function reference without std::function's allocation: the callable's address and a
    // trampoline that knows its type.
    void* ctx = const_cast<void*>(static_cast<const void*>(std::addressof(fn)));
    return drainWith(ctx, [](void* c, Bytes frame, std::uint64_t ts_ns) {
      (*static_cast<Fn*>(c))(frame, ts_ns);
    });
  }

  // Waits up to timeout_ms (-1: for ever) for a block, then drains. Returns 0 on a timeout, an
  // interrupted wait, or an error on the socket (the interface went down or away: counted in
  // Stats::errors and cleared; a ring whose interface was deleted reads nothing more and should
  // be reopened).
  template <class F>
  std::size_t poll(int timeout_ms, F&& fn) {
    if (!waitReadable(timeout_ms)) return 0;
    return drain(std::forward<F>(fn));
  }

  // The counters so far. Reading the kernel's counters resets them there, so they are
  // accumulated here; hence one thread at a time, like drain().
  Stats stats() const;

 private:
  using FrameFn = void (*)(void* ctx, Bytes frame, std::uint64_t ts_ns);

  Ring(int fd, std::string ifname, std::uint8_t* map, std::size_t block_size,
       std::size_t block_count);
  std::size_t drainWith(void* ctx, FrameFn fn);
  bool waitReadable(int timeout_ms);

  int fd_ = -1;
  std::string ifname_;
  std::uint8_t* map_ = nullptr;
  std::size_t block_size_ = 0;
  std::size_t block_count_ = 0;
  std::size_t next_ = 0;  // the block the kernel hands over next
  mutable Stats stats_;
};

}  // namespace cw::capture
