// Shared by the parts of cluster_sim (membership figures in cluster_sim.cc,
// fleet-state anti-entropy figures in cluster_sim_state.cc).
#ifndef ZM_BENCH_CLUSTER_SIM_CLUSTER_SIM_H_
#define ZM_BENCH_CLUSTER_SIM_CLUSTER_SIM_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "cluster/membership/sim.h"

namespace zm::cluster::sim {

struct BenchArgs {
  std::vector<size_t> sizes;
  int trials = 3;
  int minutes = 10;
  uint64_t seed = 1;
  int64_t starve_ms = 1500;
  // Estimated gRPC + HTTP/2 + TLS framing per message (headers frame with
  // HPACK-indexed fields, data frame, length prefix, TLS record).
  size_t overhead = 60;
  // Protocol settings to try (0 = Membership's default).
  int suspicion_mult = 0;
  int64_t probe_interval_ms = 0;
  int64_t suspicion_min_ms = 0;
  int64_t suspicion_max_ms = 0;
  int64_t probe_timeout_ms = 0;
  // Full sync interval (-1: Membership's default, 0: off).
  int64_t full_sync_ms = -1;
  // gossip: only the cases with this many changing keys/s (-1: all).
  int load = -1;
};

// A simulated fleet of n nodes with the protocol settings of `a`.
Simulator::Options FleetOptions(const BenchArgs& a, size_t n, uint64_t seed,
                                double loss = 0.0);

// Propagation, gossip bytes and partition healing of FleetState records by
// push-pull anti-entropy over the simulated network.
void StateBench(const BenchArgs& a);
// One part of it: "propagation", "gossip" (bytes, 10 nodes), "partition".
void StatePart(const BenchArgs& a, const std::string& part);

// Fleet rate-limit accuracy: real RateTrackers deciding, real FleetStates
// gossiping over the simulated network (cluster_sim_state.cc).
void RateBench(const BenchArgs& a);

}  // namespace zm::cluster::sim

#endif  // ZM_BENCH_CLUSTER_SIM_CLUSTER_SIM_H_
