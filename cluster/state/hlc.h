// zm::cluster::Hlc: a hybrid logical clock for the fleet policy overlay.
//
// Timestamps are (wall_ms, logical, node_id) and compare in that order, a
// total order across the fleet: last-writer-wins picks the greatest. A
// clock never goes back, even when the wall clock does, and moves past
// every timestamp it observes, so a write made after seeing another one
// always orders after it.
//
//   Hlc clock("node-a");
//   v1::Hlc t = clock.Now(now_ms);          // a fresh local timestamp
//   clock.Update(remote_entry.hlc());       // observed a peer's write
//   if (CompareHlc(a, b) < 0) ...           // a is older than b
//
// Not thread-safe (FleetState holds one under its lock).
#ifndef ZM_CLUSTER_STATE_HLC_H_
#define ZM_CLUSTER_STATE_HLC_H_

#include <cstdint>
#include <string>

#include "zmnode/cluster/v1/state.pb.h"

namespace zm::cluster {

namespace v1 = ::zmnode::cluster::v1;

// <0, 0 or >0 as a orders before, equal to or after b.
int CompareHlc(const v1::Hlc& a, const v1::Hlc& b);

class Hlc {
 public:
  explicit Hlc(std::string node_id);

  // A timestamp greater than every one returned or observed before.
  v1::Hlc Now(int64_t wall_ms);
  // Observes a remote timestamp: the next Now() orders after it.
  void Update(const v1::Hlc& remote);
  // The greatest (wall, logical) issued or observed.
  const v1::Hlc& Last() const { return last_; }

 private:
  v1::Hlc last_;
};

}  // namespace zm::cluster

#endif  // ZM_CLUSTER_STATE_HLC_H_
