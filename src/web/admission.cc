#include "web/admission.h"

namespace cw::web {

std::vector<Admission::Id> Admission::admit(Id id, std::optional<std::uint32_t> owner, Clock::time_point now) {
  const Owner o = key(owner);
  unproven_[id] = Entry{o, now + limits_.header_deadline};
  auto& mine = by_owner_[o];
  mine.insert(id);
  std::vector<Id> out;
  while (mine.size() > limits_.per_owner && *mine.begin() != id) {
    const Id oldest = *mine.begin();
    out.push_back(oldest);
    forget(unproven_.find(oldest));  // may erase `mine` only when it empties, which it cannot here
  }
  while (unproven_.size() > limits_.total && unproven_.begin()->first != id) {
    out.push_back(unproven_.begin()->first);
    forget(unproven_.begin());
  }
  return out;
}

void Admission::forget(std::map<Id, Entry>::iterator it) {
  if (it == unproven_.end()) return;
  auto o = by_owner_.find(it->second.owner);
  if (o != by_owner_.end()) {
    o->second.erase(it->first);
    if (o->second.empty()) by_owner_.erase(o);
  }
  unproven_.erase(it);
}

void Admission::proven(Id id) { forget(unproven_.find(id)); }

void Admission::closed(Id id) { forget(unproven_.find(id)); }

std::vector<Admission::Id> Admission::expired(Clock::time_point now) {
  std::vector<Id> out;
  while (!unproven_.empty() && unproven_.begin()->second.deadline <= now) {
    out.push_back(unproven_.begin()->first);
    forget(unproven_.begin());
  }
  return out;
}

std::optional<Admission::Clock::time_point> Admission::nextDeadline() const {
  if (unproven_.empty()) return std::nullopt;
  return unproven_.begin()->second.deadline;
}

std::size_t Admission::unproven(std::optional<std::uint32_t> owner) const {
  auto it = by_owner_.find(key(owner));
  return it == by_owner_.end() ? 0 : it->second.size();
}

}  // namespace cw::web
