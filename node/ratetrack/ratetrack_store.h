// The RocksDB side of the rate-tracker: one row per source key holding
// every (node, slot) count of that key, rewritten whole when it changes.
// Internal to zm_ratetrack.
#ifndef ZM_RATETRACK_RATETRACK_STORE_H_
#define ZM_RATETRACK_RATETRACK_STORE_H_

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "node/ratetrack/rate_tracker.h"

namespace zm::ratetrack::internal {

// One (node, slot) count of one key, as kept in memory and on disk.
struct Entry {
  int64_t slot_start = 0;
  std::string node;
  Counts counts;
  int64_t changed_sec = 0;  // when this node last added to it (gossip)
};

// Row value: one line per entry, "node slot_start changed_sec messages
// recipients auth_failures aborts excesses". Malformed lines are skipped.
std::string EncodeRow(const std::vector<Entry>& entries);
std::vector<Entry> DecodeRow(std::string_view value);

class Store {
 public:
  // db/ratetrack/ under the node, created if missing. read_only opens
  // RocksDB without its lock (another process may hold it).
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& path,
                                                     bool read_only);
  virtual ~Store() = default;

  // Every row: (key, value).
  virtual absl::Status Load(
      std::vector<std::pair<std::string, std::string>>* rows) = 0;
  // One batch: a row per key, std::nullopt deletes the key.
  virtual absl::Status Write(
      const std::vector<std::pair<std::string, std::optional<std::string>>>&
          rows) = 0;
};

}  // namespace zm::ratetrack::internal

#endif  // ZM_RATETRACK_RATETRACK_STORE_H_
