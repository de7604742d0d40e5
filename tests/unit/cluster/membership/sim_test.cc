// The protocol's behaviour across a fleet, through the simulator: simulated
// time and a lossy in-memory network, so nothing here depends on the real
// clock. Bounds are generous multiples of the protocol's own timeouts.
#include "cluster/membership/sim.h"

#include <gtest/gtest.h>

namespace zm::cluster::sim {
namespace {

constexpr int64_t kMinute = 60'000;

Simulator::Options Fleet(size_t n, uint64_t seed, double loss = 0.0) {
  Simulator::Options o;
  o.nodes = n;
  o.seed = seed;
  o.net.loss = loss;
  return o;
}

void Form(Simulator& s) {
  ASSERT_TRUE(s.RunUntil([&] { return s.Converged(); }, kMinute))
      << "the fleet did not form";
}

TEST(SimTest, FleetFormsThroughSeeds) {
  Simulator s(Fleet(16, 1));
  Form(s);
  EXPECT_EQ(s.node(5)->LiveCount(), 16u);
  EXPECT_EQ(s.counters().false_dead, 0u);
}

TEST(SimTest, KilledNodeEndsDeadEverywhere) {
  Simulator s(Fleet(16, 2));
  Form(s);
  s.Kill(9);
  EXPECT_TRUE(
      s.RunUntil([&] { return s.AllSee(9, MemberState::kDead); }, 2 * kMinute));
  EXPECT_EQ(s.counters().false_dead, 0u);
}

TEST(SimTest, SuspectedLiveNodeRefutes) {
  Simulator s(Fleet(8, 3));
  Form(s);
  // Cut node 4 off until somebody suspects it, then reconnect it.
  std::vector<int> groups(8, 0);
  groups[4] = 1;
  s.Partition(groups);
  ASSERT_TRUE(s.RunUntil(
      [&] {
        for (size_t v = 0; v < 8; ++v) {
          if (v != 4 && s.StateIn(v, 4) == MemberState::kSuspect) return true;
        }
        return false;
      },
      kMinute));
  s.Heal();
  EXPECT_TRUE(
      s.RunUntil([&] { return s.AllSee(4, MemberState::kAlive); }, kMinute));
  EXPECT_GT(s.node(4)->Self().incarnation, 0u);
  EXPECT_GT(s.counters().refutations, 0u);
  EXPECT_EQ(s.counters().false_dead, 0u);
}

TEST(SimTest, LeaveIsSeenAsLeftNotDead) {
  Simulator s(Fleet(12, 4));
  Form(s);
  s.Leave(3);
  EXPECT_TRUE(
      s.RunUntil([&] { return s.AllSee(3, MemberState::kLeft); }, kMinute));
  s.RunFor(kMinute);
  EXPECT_TRUE(s.AllSee(3, MemberState::kLeft));
  EXPECT_EQ(s.counters().dead_events, 0u);
}

TEST(SimTest, RestartWithANewGenerationReplacesTheOldSelf) {
  Simulator s(Fleet(8, 5));
  Form(s);
  s.Kill(6);
  ASSERT_TRUE(
      s.RunUntil([&] { return s.AllSee(6, MemberState::kDead); }, 2 * kMinute));
  s.Restart(6);
  EXPECT_TRUE(s.RunUntil([&] { return s.Converged(); }, kMinute));
  // A restart before anyone noticed the crash works the same way.
  s.Kill(2);
  s.Restart(2);
  EXPECT_TRUE(s.RunUntil([&] { return s.Converged(); }, kMinute));
  EXPECT_EQ(s.counters().false_dead, 0u);
}

TEST(SimTest, NoFalseDeadWithFivePercentLoss) {
  Simulator s(Fleet(16, 6, 0.05));
  Form(s);
  s.RunFor(5 * kMinute);
  EXPECT_EQ(s.counters().false_dead, 0u);
  EXPECT_TRUE(s.Converged());
}

TEST(SimTest, NoFalseDeadWithAStarvedNode) {
  Simulator s(Fleet(16, 7));
  Form(s);
  s.SetStarved(11, 1500);  // every event on node 11 runs up to 1.5 s late
  s.RunFor(5 * kMinute);
  EXPECT_EQ(s.counters().false_dead, 0u);
  // Its own failed probes made it trust itself less.
  EXPECT_GT(s.node(11)->Stats().refutations + s.node(11)->Stats().awareness,
            0u);
}

TEST(SimTest, PartitionedHalvesReuniteAfterHealing) {
  Simulator s(Fleet(12, 8));
  Form(s);
  std::vector<int> groups(12, 0);
  for (size_t i = 6; i < 12; ++i) groups[i] = 1;
  s.Partition(groups);
  // Each side declares the other dead and keeps working.
  EXPECT_TRUE(s.RunUntil(
      [&] {
        for (size_t a = 0; a < 12; ++a) {
          for (size_t b = 0; b < 12; ++b) {
            if (groups[a] != groups[b] &&
                s.StateIn(a, b) != MemberState::kDead) {
              return false;
            }
          }
        }
        return true;
      },
      3 * kMinute));
  EXPECT_EQ(s.node(0)->LiveCount(), 6u);
  s.Heal();
  EXPECT_TRUE(s.RunUntil([&] { return s.Converged(); }, 2 * kMinute));
}

TEST(SimTest, ANewNodeJoinsARunningFleet) {
  Simulator s(Fleet(10, 9));
  Form(s);
  const size_t n = s.AddNode();
  EXPECT_TRUE(
      s.RunUntil([&] { return s.AllSee(n, MemberState::kAlive); }, kMinute));
  EXPECT_TRUE(s.RunUntil([&] { return s.Converged(); }, kMinute));
}

// A cold start of 64 nodes in which, without a full sync, some members
// never learn of some others: their alive news was spent (every copy used
// its retransmits) before reaching them, and nothing sends it again (seed
// 113 of bench/cluster-sim's formation trials). The periodic full sync
// (push-pull of the member table with one random peer) fills the gap.
TEST(SimTest, FullSyncCompletesAFleetWhoseNewsWasLost) {
  Simulator s(Fleet(64, 113));
  EXPECT_TRUE(s.RunUntil([&] { return s.Converged(); }, 5 * kMinute))
      << "some members never learnt of some others";
  uint64_t learnt = 0;
  uint64_t syncs = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    learnt += s.node(i)->Stats().full_sync_learnt;
    syncs += s.node(i)->Stats().full_syncs;
  }
  EXPECT_GT(learnt, 0u) << "the gap was not filled by a full sync";
  EXPECT_GT(syncs, 0u);
  EXPECT_EQ(s.counters().false_dead, 0u);
}

// One full sync per interval per node, not more: over 10 simulated
// minutes of an idle fleet of 8, each node starts about 20 (30 s, less a
// jitter of up to a quarter).
TEST(SimTest, FullSyncRunsAtItsInterval) {
  Simulator s(Fleet(8, 10));
  Form(s);
  s.RunFor(10 * kMinute);
  for (size_t i = 0; i < s.size(); ++i) {
    const uint64_t n = s.node(i)->Stats().full_syncs;
    EXPECT_GE(n, 15u) << "node " << i;
    EXPECT_LE(n, 27u) << "node " << i;
  }
}

TEST(SimTest, FullSyncOffSendsNone) {
  Simulator::Options o = Fleet(8, 11);
  o.membership.full_sync_interval_ms = 0;
  Simulator s(o);
  Form(s);
  s.RunFor(2 * kMinute);
  for (size_t i = 0; i < s.size(); ++i) {
    EXPECT_EQ(s.node(i)->Stats().full_syncs, 0u);
  }
}

}  // namespace
}  // namespace zm::cluster::sim
