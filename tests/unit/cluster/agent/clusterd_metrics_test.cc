// ClusterdMetrics: the agent's and membership's running totals become
// exported counters (what grew since the last Update) and the idle gauge,
// read back through the registry as admind would read the file.
#include "cluster/agent/clusterd_metrics.h"

#include <gtest/gtest.h>

#include <string>

namespace zm::cluster {
namespace {

int64_t Value(metrics::Registry& r, const std::string& name,
              const metrics::LabelList& labels = {}) {
  return r.GetCounter(name, labels).value();
}

TEST(ClusterdMetricsTest, TotalsBecomeCountersAndTheIdleGauge) {
  auto reg = metrics::Registry::InMemory();
  ClusterdMetrics m(*reg);
  AgentStats a;
  MembershipStats s;
  s.probes = 10;
  s.probe_acks = 9;
  s.probe_failures = 1;
  s.pings_answered = 7;
  s.suspect_transitions = 1;
  s.full_syncs = 2;
  a.exchanges = 5;
  a.gossip_idle = true;
  m.Update(a, s);
  EXPECT_EQ(Value(*reg, "zmnode_gossip_probes_total"), 10);
  EXPECT_EQ(Value(*reg, "zmnode_gossip_probe_acks_total"), 9);
  EXPECT_EQ(Value(*reg, "zmnode_gossip_pings_answered_total"), 7);
  EXPECT_EQ(Value(*reg, "zmnode_gossip_member_transitions_total",
                  {{"state", "suspect"}}),
            1);
  EXPECT_EQ(Value(*reg, "zmnode_gossip_member_transitions_total",
                  {{"state", "dead"}}),
            0);
  EXPECT_EQ(Value(*reg, "zmnode_gossip_full_syncs_total"), 2);
  EXPECT_EQ(Value(*reg, "zmnode_gossip_exchanges_total"), 5);
  EXPECT_EQ(reg->GetGauge("zmnode_gossip_idle").value(), 1);

  // Only the growth is added: the counter follows the total.
  s.probes = 25;
  s.dead_transitions = 1;
  a.gossip_idle = false;
  m.Update(a, s);
  m.Update(a, s);
  EXPECT_EQ(Value(*reg, "zmnode_gossip_probes_total"), 25);
  EXPECT_EQ(Value(*reg, "zmnode_gossip_member_transitions_total",
                  {{"state", "dead"}}),
            1);
  EXPECT_EQ(Value(*reg, "zmnode_gossip_full_syncs_total"), 2);
  EXPECT_EQ(reg->GetGauge("zmnode_gossip_idle").value(), 0);
}

}  // namespace
}  // namespace zm::cluster
