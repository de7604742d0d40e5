// The node status record: last-writer-wins per origin under the Hlc,
// replicated by anti-entropy, bounded in size, persisted, dropped a
// horizon after its last publication.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>

#include "cluster/state/fleet_state.h"
#include "tests/unit/cluster/state/state_testing.h"

namespace zm::cluster {
namespace {

using testing::FakeClock;
using testing::Fingerprint;
using testing::kT0Ms;
using testing::Mem;
using testing::SyncPair;

v1::NodeStatus Status(uint64_t messages) {
  v1::NodeStatus st;
  st.set_zm_version("zmnode 1");
  st.set_admin_url("http://127.0.0.1:8025/");
  st.set_started_unix_ms(kT0Ms - 1000);
  st.mutable_queue()->set_messages(messages);
  v1::NodeHistory* h = st.mutable_history();
  h->set_first_minute_unix(kT0Ms / 1000 - 60);
  for (int i = 0; i < 2; ++i) {
    h->add_received(messages + i);
    h->add_delivered(i);
    h->add_deferred(0);
    h->add_bounced(0);
    h->add_rejected_policy(0);
    h->add_rejected_rate(0);
  }
  return st;
}

TEST(NodeStatusTest, PublishStampsAndReplaces) {
  FakeClock clock;
  auto a = Mem("a", clock);
  v1::NodeStatus in = Status(3);
  in.set_node_id("someone-else");  // the agent's own id wins
  auto first = a->PublishNodeStatus(in);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->node_id(), "a");
  EXPECT_EQ(first->hlc().node_id(), "a");
  EXPECT_GT(first->version(), 0u);
  clock.now_ms += 10000;
  auto second = a->PublishNodeStatus(Status(5));
  ASSERT_TRUE(second.ok());
  EXPECT_GT(second->version(), first->version());
  auto all = a->NodeStatuses();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].queue().messages(), 5u);
  EXPECT_EQ(a->Stats().node_statuses, 1u);
}

TEST(NodeStatusTest, GossipCarriesTheNewestOnly) {
  FakeClock clock;
  auto a = Mem("a", clock), b = Mem("b", clock), c = Mem("c", clock);
  ASSERT_TRUE(a->PublishNodeStatus(Status(1)).ok());
  SyncPair(*a, *b);
  clock.now_ms += 10000;
  ASSERT_TRUE(a->PublishNodeStatus(Status(2)).ok());
  ASSERT_TRUE(b->PublishNodeStatus(Status(7)).ok());
  SyncPair(*b, *c);  // c gets a's old status through b
  SyncPair(*a, *c);
  SyncPair(*b, *c);
  for (auto* st : {a.get(), b.get(), c.get()}) {
    auto all = st->NodeStatuses();
    ASSERT_EQ(all.size(), 2u) << st->node_id();
    EXPECT_EQ(all[0].node_id(), "a");
    EXPECT_EQ(all[0].queue().messages(), 2u) << st->node_id();
    EXPECT_EQ(all[1].queue().messages(), 7u);
  }
  EXPECT_EQ(Fingerprint(*a, clock.now_ms), Fingerprint(*c, clock.now_ms));
}

TEST(NodeStatusTest, AnOlderStatusDoesNotReplaceANewer) {
  FakeClock clock;
  auto a = Mem("a", clock), b = Mem("b", clock);
  auto old = a->PublishNodeStatus(Status(1));
  clock.now_ms += 1000;
  ASSERT_TRUE(a->PublishNodeStatus(Status(2)).ok());
  SyncPair(*a, *b);
  v1::Delta late;
  *late.add_node_statuses() = *old;
  auto got = b->Apply(late);
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got->node_statuses.empty());
  EXPECT_EQ(got->rejected, 0u);
  EXPECT_EQ(b->NodeStatuses().at(0).queue().messages(), 2u);
}

TEST(NodeStatusTest, OversizeAndMalformedAreRefusedAndCounted) {
  FakeClock clock;
  FleetStateOptions opt = clock.Options();
  opt.max_status_bytes = 512;
  auto small = FleetState::InMemory("s", 1, opt);
  ASSERT_TRUE(small.ok());
  v1::NodeStatus big = Status(1);
  big.set_hostname(std::string(200, 'h'));
  for (int i = 0; i < 10; ++i) {
    v1::QueueDestination* d = big.mutable_queue()->add_top_destinations();
    d->set_channel("smtp");
    d->set_host(std::string(60, 'a' + i));
  }
  // Locally: refused, nothing stored.
  auto local = (*small)->PublishNodeStatus(big);
  EXPECT_EQ(local.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE((*small)->NodeStatuses().empty());
  // From a peer (whose bound is larger): refused and counted.
  auto peer = Mem("p", clock);
  ASSERT_TRUE(peer->PublishNodeStatus(big).ok());
  v1::NodeStatus bad = Status(1);
  bad.set_node_id("q");
  bad.mutable_hlc()->set_node_id("not-q");
  bad.mutable_hlc()->set_wall_ms(kT0Ms);
  bad.set_version(1);
  v1::Delta d = peer->DeltaFor(v1::Digest(), 1 << 20).delta;
  *d.add_node_statuses() = bad;
  v1::NodeStatus uneven = Status(1);
  uneven.set_node_id("r");
  uneven.mutable_hlc()->set_node_id("r");
  uneven.mutable_hlc()->set_wall_ms(kT0Ms);
  uneven.set_version(1);
  uneven.mutable_history()->add_received(1);  // one series longer
  *d.add_node_statuses() = uneven;
  auto got = (*small)->Apply(d);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->rejected, 3u);
  EXPECT_TRUE(got->node_statuses.empty());
  EXPECT_EQ((*small)->Stats().statuses_oversize, 1u);
  EXPECT_EQ((*small)->Stats().rejected, 3u);
  EXPECT_TRUE((*small)->NodeStatuses().empty());
}

TEST(NodeStatusTest, DroppedAHorizonAfterTheLastPublication) {
  FakeClock clock;
  auto a = Mem("a", clock), b = Mem("b", clock);
  auto st = a->PublishNodeStatus(Status(1));
  ASSERT_TRUE(st.ok());
  SyncPair(*a, *b);
  clock.now_ms += 25LL * 3600 * 1000;
  auto ex = b->Expire();
  ASSERT_TRUE(ex.ok());
  EXPECT_EQ(ex->node_statuses, 1u);
  EXPECT_TRUE(b->NodeStatuses().empty());
  // A stale copy arriving later is not taken back.
  v1::Delta late;
  *late.add_node_statuses() = *st;
  auto got = b->Apply(late);
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(b->NodeStatuses().empty());
  // Both sides drop it: they agree again.
  ASSERT_TRUE(a->Expire().ok());
  EXPECT_EQ(Fingerprint(*a, clock.now_ms), Fingerprint(*b, clock.now_ms));
}

TEST(NodeStatusTest, SurvivesARestart) {
  char tmpl[] = "/tmp/zm-nodestatus-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string dir = tmpl;
  FakeClock clock;
  uint64_t version = 0;
  {
    auto st = FleetState::Open(dir + "/db", "a", 1, clock.Options());
    ASSERT_TRUE(st.ok()) << st.status();
    auto pub = (*st)->PublishNodeStatus(Status(4));
    ASSERT_TRUE(pub.ok());
    version = pub->version();
    auto peer = Mem("b", clock);
    ASSERT_TRUE(peer->PublishNodeStatus(Status(9)).ok());
    SyncPair(*peer, **st);
  }
  {
    auto st = FleetState::Open(dir + "/db", "a", 2, clock.Options());
    ASSERT_TRUE(st.ok()) << st.status();
    auto all = (*st)->NodeStatuses();
    ASSERT_EQ(all.size(), 2u);
    EXPECT_EQ(all[0].queue().messages(), 4u);
    EXPECT_EQ(all[1].queue().messages(), 9u);
    clock.now_ms += 5;
    auto next = (*st)->PublishNodeStatus(Status(5));
    ASSERT_TRUE(next.ok());
    EXPECT_GT(next->version(), version);
    EXPECT_GT(CompareHlc(next->hlc(), all[0].hlc()), 0);
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace zm::cluster
