// clusterd's gossip counters in run/metrics/clusterd.stats (node/metrics):
// admind's /metrics serves them with the node's other metrics
// (docs/metrics.md). The agent and its membership keep running totals;
// Update turns them into exported counters (adding what grew since the
// last call) and gauges.
//
//   ClusterdMetrics m(node);
//   m.Update(agent.Stats(), agent.membership().Stats());   // now and then
#ifndef ZM_CLUSTER_AGENT_CLUSTERD_METRICS_H_
#define ZM_CLUSTER_AGENT_CLUSTERD_METRICS_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "cluster/agent/agent.h"
#include "cluster/membership/membership.h"
#include "node/common/node_dir.h"
#include "node/metrics/metrics.h"

namespace zm::cluster {

class ClusterdMetrics {
 public:
  explicit ClusterdMetrics(const NodeDir& node);
  // For tests: into `registry` (not owned; outlives this).
  explicit ClusterdMetrics(metrics::Registry& registry);

  void Update(const AgentStats& agent, const MembershipStats& membership);

 private:
  // One exported counter fed from a running total.
  struct Mirror {
    metrics::Counter counter;
    uint64_t last = 0;
  };
  void Register(metrics::Registry& r);
  static void Feed(Mirror& m, uint64_t total);

  std::unique_ptr<metrics::Registry> owned_;
  Mirror probes_, acks_, probe_failures_, indirect_, pings_answered_, suspect_,
      dead_, refutations_, full_syncs_, full_sync_learnt_, exchanges_, pushes_,
      rounds_, hash_mismatches_, gzipped_;
  metrics::Gauge idle_;
};

}  // namespace zm::cluster

#endif  // ZM_CLUSTER_AGENT_CLUSTERD_METRICS_H_
