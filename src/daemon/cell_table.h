// The daemon's record of its cells: ids, addresses, and the file that lets a restarted daemon
// find them again (the store's cells table). Control thread only.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "api/commands.h"
#include "common/net.h"
#include "common/result.h"
#include "decide/net_view.h"
#include "store/store.h"

namespace cw::daemon {

struct CellRecord {
  api::CellInfo info;
  std::shared_ptr<decide::CellRuntime> runtime;  // the names it resolved
  Ip4 ip;
  MacAddr mac;
};

class CellTable {
 public:
  explicit CellTable(std::filesystem::path state_dir);
  // Where save() and load() keep the cells (the daemon's store).
  void attach(store::Store* s) { store_ = s; }

  // The next free id in 1..kMaxCellId (0: that many cells run already), and the lowest free
  // address of `pool` (skipping the gateway, .1).
  static constexpr std::uint32_t kMaxCellId = 0xffff;
  std::uint32_t nextId();
  std::optional<Ip4> allocateIp(const Cidr& pool) const;
  static MacAddr macFor(Ip4 ip);  // 02:cw:<ip>: locally administered, stable per address

  void add(CellRecord r);
  void remove(std::uint32_t id);
  CellRecord* find(std::uint32_t id);
  const std::map<std::uint32_t, CellRecord>& all() const { return cells_; }

  // The store's cells table: what a restarted daemon needs to adopt or remove them.
  Expected<void> save() const;
  Expected<std::vector<api::CellInfo>> load() const;

  std::filesystem::path cellDir(std::uint32_t id) const;

 private:
  std::filesystem::path state_dir_;
  store::Store* store_ = nullptr;
  std::uint32_t next_id_ = 1;
  std::map<std::uint32_t, CellRecord> cells_;
};

}  // namespace cw::daemon
