// The daemon's record of its cells: ids, addresses, and the file that lets a restarted daemon
// find them again (state_dir/cells.json). Control thread only.
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

  // The next id and the lowest free address of `pool` (skipping the gateway, .1).
  std::uint32_t nextId();
  std::optional<Ip4> allocateIp(const Cidr& pool) const;
  static MacAddr macFor(Ip4 ip);  // 02:cw:<ip>: locally administered, stable per address

  void add(CellRecord r);
  void remove(std::uint32_t id);
  CellRecord* find(std::uint32_t id);
  const std::map<std::uint32_t, CellRecord>& all() const { return cells_; }

  // cells.json: what a restarted daemon needs (policy is recompiled from the stored text).
  Expected<void> save() const;
  Expected<std::vector<api::CellInfo>> load() const;

  std::filesystem::path cellDir(std::uint32_t id) const;

 private:
  std::filesystem::path state_dir_;
  std::uint32_t next_id_ = 1;
  std::map<std::uint32_t, CellRecord> cells_;
};

}  // namespace cw::daemon
