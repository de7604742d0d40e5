#include "cluster/agent/clusterd_metrics.h"

#include <string_view>

namespace zm::cluster {

ClusterdMetrics::ClusterdMetrics(const NodeDir& node)
    : owned_(metrics::Registry::Open(node.run() + "/metrics", "clusterd")) {
  Register(*owned_);
}

ClusterdMetrics::ClusterdMetrics(metrics::Registry& registry) {
  Register(registry);
}

void ClusterdMetrics::Register(metrics::Registry& r) {
  auto counter = [&](Mirror& m, std::string_view name,
                     const metrics::LabelList& labels = {}) {
    m.counter = r.GetCounter(name, labels);
  };
  counter(probes_, "zmnode_gossip_probes_total");
  counter(acks_, "zmnode_gossip_probe_acks_total");
  counter(probe_failures_, "zmnode_gossip_probe_failures_total");
  counter(indirect_, "zmnode_gossip_indirect_probes_total");
  counter(pings_answered_, "zmnode_gossip_pings_answered_total");
  counter(suspect_, "zmnode_gossip_member_transitions_total",
          {{"state", "suspect"}});
  counter(dead_, "zmnode_gossip_member_transitions_total", {{"state", "dead"}});
  counter(refutations_, "zmnode_gossip_refutations_total");
  counter(full_syncs_, "zmnode_gossip_full_syncs_total");
  counter(full_sync_learnt_, "zmnode_gossip_full_sync_learnt_total");
  counter(exchanges_, "zmnode_gossip_exchanges_total");
  counter(pushes_, "zmnode_gossip_pushes_total");
  counter(rounds_, "zmnode_gossip_rounds_total");
  counter(hash_mismatches_, "zmnode_gossip_hash_mismatches_total");
  counter(gzipped_, "zmnode_gossip_deltas_gzipped_total");
  idle_ = r.GetGauge("zmnode_gossip_idle");
}

void ClusterdMetrics::Feed(Mirror& m, uint64_t total) {
  if (total > m.last) m.counter.Inc(static_cast<int64_t>(total - m.last));
  m.last = total;
}

void ClusterdMetrics::Update(const AgentStats& a, const MembershipStats& m) {
  Feed(probes_, m.probes);
  Feed(acks_, m.probe_acks);
  Feed(probe_failures_, m.probe_failures);
  Feed(indirect_, m.indirect_probes);
  Feed(pings_answered_, m.pings_answered);
  Feed(suspect_, m.suspect_transitions);
  Feed(dead_, m.dead_transitions);
  Feed(refutations_, m.refutations);
  Feed(full_syncs_, m.full_syncs);
  Feed(full_sync_learnt_, m.full_sync_learnt);
  Feed(exchanges_, a.exchanges);
  Feed(pushes_, a.pushes);
  Feed(rounds_, a.gossip_rounds);
  Feed(hash_mismatches_, a.hash_mismatches);
  Feed(gzipped_, a.deltas_gzipped);
  idle_.Set(a.gossip_idle ? 1 : 0);
}

}  // namespace zm::cluster
