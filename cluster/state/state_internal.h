// Internals of zm_cluster_state: record validation and the RocksDB store.
// Not part of the public interface (fleet_state.h is).
#ifndef ZM_CLUSTER_STATE_STATE_INTERNAL_H_
#define ZM_CLUSTER_STATE_STATE_INTERNAL_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cluster/state/fleet_state.h"

namespace zm::cluster::internal {

// Earliest time a record may carry (2000-01-01): anything before is absurd.
inline constexpr int64_t kMinUnixMs = 946684800000LL;

// A node id or request id: 1-255 printable ASCII bytes, no space.
bool ValidToken(std::string_view s);
// 0-max bytes, no control characters.
bool ValidText(std::string_view s, size_t max);

// Each checks a record a peer sent; InvalidArgument says what is wrong.
absl::Status ValidateRateSlot(const v1::RateSlot& r,
                              const FleetStateOptions& opt, int64_t now_ms);
absl::Status ValidatePolicy(const v1::PolicyEntry& p,
                            const FleetStateOptions& opt, int64_t now_ms);
absl::Status ValidateEtrnRequest(const v1::EtrnRequest& r,
                                 const FleetStateOptions& opt, int64_t now_ms);
absl::Status ValidateEtrnResult(const v1::EtrnResult& r,
                                const FleetStateOptions& opt, int64_t now_ms);
// A node status, from a peer (`local` false) or published here (`local`:
// node_id, hlc and version are not yet set).
absl::Status ValidateNodeStatus(const v1::NodeStatus& s,
                                const FleetStateOptions& opt, int64_t now_ms,
                                bool local);

// Rows to write in one atomic batch: key and value, std::nullopt deletes.
using Batch = std::vector<std::pair<std::string, std::optional<std::string>>>;

class Store {
 public:
  virtual ~Store() = default;
  // Every row, in key order.
  virtual absl::Status Load(
      const std::function<void(std::string_view, std::string_view)>& row) = 0;
  virtual absl::Status Write(const Batch& batch, bool sync) = 0;
};

// RocksDB under `path`, created if missing.
absl::StatusOr<std::unique_ptr<Store>> OpenRocksStore(const std::string& path);

}  // namespace zm::cluster::internal

#endif  // ZM_CLUSTER_STATE_STATE_INTERNAL_H_
