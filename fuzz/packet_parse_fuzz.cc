// parseFrame on arbitrary bytes: must never read outside the input, and every view it returns
// must lie inside the input and agree with the offsets. describe() must accept any parsed frame.
// finishChecksums() (checksum.h) must stay inside the frame, change only TCP/UDP frames, keep
// them parsing the same way, and change nothing the second time.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include <vector>

#include "packet/checksum.h"
#include "packet/frame.h"

namespace {

bool inside(cw::Bytes part, cw::Bytes whole) {
  if (part.empty()) return true;
  const auto* begin = whole.data();
  const auto* end = whole.data() + whole.size();
  return part.data() >= begin && part.data() <= end &&
         part.size() <= static_cast<std::size_t>(end - part.data());
}

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const cw::Bytes raw(data, size);
  auto r = cw::packet::parseFrame(raw);
  if (!r) {
    check(cw::packet::parseErrorName(r.error())[0] != 'u');  // a known name, not "unknown"
    return 0;
  }
  using cw::packet::L3;
  using cw::packet::L4;
  const cw::packet::Frame& f = *r;
  check(f.raw.data() == raw.data() && f.raw.size() == raw.size());
  check(f.vlan_count <= 2);
  check(f.l3_offset >= 14 && f.l3_offset <= size);
  check(f.l3_offset == 14u + 4u * f.vlan_count);
  check(inside(f.payload, raw));
  check(inside(f.ip_payload, raw));
  if (f.isIp()) {
    check(f.l3_offset < size);
    check(f.ip_payload.empty() || f.ip_payload.data() >= raw.data() + f.l3_offset + 20);
    check(!f.ip_later_fragment || f.ip_fragment);
    check(!f.ip_later_fragment || f.l4 == L4::kNone);
  } else {
    check(f.ip_payload.empty() && f.l4 == L4::kNone);
  }
  if (f.l4 != L4::kNone) {
    check(f.l4_offset > f.l3_offset && f.l4_offset <= size);
    check(f.ip_payload.data() == raw.data() + f.l4_offset);
    // The transport header and payload sit inside the IP payload.
    check(inside(f.payload, f.ip_payload));
    if (!f.payload.empty()) check(f.payload.data() >= raw.data() + f.l4_offset);
  } else {
    check(f.payload.empty());
  }
  if (f.l3 == L3::kArp) check(size >= f.l3_offset + 28);
  const std::string line = cw::packet::describe(f);
  check(!line.empty());

  std::vector<std::uint8_t> copy(data, data + size);
  const bool finished = cw::packet::finishChecksums(copy);
  check(finished || copy == std::vector<std::uint8_t>(data, data + size));
  check(!finished || f.l4 == L4::kTcp || f.l4 == L4::kUdp);
  auto again = cw::packet::parseFrame(copy);
  check(again && again->l3 == f.l3 && again->l4 == f.l4 && again->l4_offset == f.l4_offset &&
        again->ip_payload.size() == f.ip_payload.size());
  const std::vector<std::uint8_t> once = copy;
  (void)cw::packet::finishChecksums(copy);  // true only if the right sum is the partial one too
  check(copy == once);
  return 0;
}
