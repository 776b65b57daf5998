// FlatIndex: an open-addressing hash index from a 32-bit tag (a hash, or for IPv4 a keyed
// bijection of the address) to a 32-bit value (a record index, or for IPv4 the head of the
// address's entry list). Internal to src/names.
//
// Why not std::unordered_map: one node allocation per key (~40 bytes) would double the
// table's memory. Here a key costs one 8-byte slot at a load between 3/8 and 3/4. Linear
// probing with backward-shift deletion: no tombstones, so probe lengths do not degrade under
// the constant insert/erase churn of DNS answers. The caller confirms candidates whose tag
// matches (equal tags are possible for hashes, impossible for the IPv4 bijection).
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace cw::names {

class FlatIndex {
 public:
  static constexpr std::uint32_t kAbsent = 0xffffffffu;  // not a storable value

  // The value of the first slot with this tag for which is_it(value) holds, or nullptr. The
  // pointer is good until the next insert or erase.
  template <class Pred>
  const std::uint32_t* find(std::uint32_t tag, Pred&& is_it) const {
    if (slots_.empty()) return nullptr;
    for (std::size_t i = tag & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.value == kAbsent) return nullptr;
      if (s.tag == tag && is_it(s.value)) return &s.value;
    }
  }
  template <class Pred>
  std::uint32_t* find(std::uint32_t tag, Pred&& is_it) {
    return const_cast<std::uint32_t*>(std::as_const(*this).find(tag, is_it));
  }

  // Adds (tag, value); the caller has checked that the key is not indexed yet.
  void insert(std::uint32_t tag, std::uint32_t value) {
    if ((count_ + 1) * 4 > slots_.size() * 3)
      rehash(slots_.empty() ? kMinSlots : slots_.size() * 2);
    place(tag, value);
    ++count_;
  }

  // Removes the slot find(tag, is_it) would return, which must exist.
  template <class Pred>
  void erase(std::uint32_t tag, Pred&& is_it) {
    std::size_t i = tag & mask_;
    while (slots_[i].tag != tag || !is_it(slots_[i].value)) i = (i + 1) & mask_;
    // Backward shift: pull later members of the probe run into the hole unless their home
    // lies cyclically in (hole, j], where moving them would put them before their home.
    for (std::size_t j = (i + 1) & mask_; slots_[j].value != kAbsent; j = (j + 1) & mask_) {
      std::size_t home = slots_[j].tag & mask_;
      bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
      if (stays) continue;
      slots_[i] = slots_[j];
      i = j;
    }
    slots_[i] = Slot{};
    --count_;
    // Shrink with hysteresis (grow at 3/4, shrink at 1/8 to 1/4) so churn cannot thrash.
    if (slots_.size() > kMinSlots && count_ * 8 < slots_.size()) rehash(slots_.size() / 2);
  }

  // Calls fn(tag, value) for every slot, in no particular order.
  template <class Fn>
  void forEach(Fn&& fn) const {
    for (const Slot& s : slots_)
      if (s.value != kAbsent) fn(s.tag, s.value);
  }

  void clear() {
    slots_ = std::vector<Slot>();  // move-assign frees; "= {}" would keep the capacity
    mask_ = 0;
    count_ = 0;
  }

  std::size_t count() const { return count_; }
  std::size_t size() const { return slots_.capacity() * sizeof(Slot); }

 private:
  struct Slot {
    std::uint32_t tag = 0;
    std::uint32_t value = kAbsent;
  };
  static constexpr std::size_t kMinSlots = 16;

  void place(std::uint32_t tag, std::uint32_t value) {
    std::size_t i = tag & mask_;
    while (slots_[i].value != kAbsent) i = (i + 1) & mask_;
    slots_[i] = Slot{tag, value};
  }

  void rehash(std::size_t slot_count) {
    std::vector<Slot> old(slot_count);
    old.swap(slots_);
    mask_ = slot_count - 1;
    for (const Slot& s : old)
      if (s.value != kAbsent) place(s.tag, s.value);
  }

  std::vector<Slot> slots_;
  std::size_t mask_ = 0;
  std::size_t count_ = 0;
};

}  // namespace cw::names
