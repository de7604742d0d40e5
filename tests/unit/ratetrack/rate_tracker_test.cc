#include "node/ratetrack/rate_tracker.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <thread>

namespace zm::ratetrack {
namespace {

constexpr int64_t kT0 = 1'700'000'100;  // inside a 450 s slot, not at its start

RateWindow Window() { return RateWindow{.slots = 8, .slot_seconds = 450}; }

TEST(KeysTest, Ipv4Ipv6AndMapped) {
  EXPECT_EQ(*KeyForIp("192.0.2.7"), "ip4:192.0.2.7");
  EXPECT_EQ(*KeyForIp("[192.0.2.7]"), "ip4:192.0.2.7");
  EXPECT_EQ(*KeyForIp("::ffff:192.0.2.7"), "ip4:192.0.2.7");
  EXPECT_EQ(*KeyForIp("2001:db8:1:2:aaaa:bbbb:cccc:dddd"),
            "ip6:2001:db8:1:2::/64");
  EXPECT_EQ(*KeyForIp("[IPv6:2001:db8:1:2::99]"), "ip6:2001:db8:1:2::/64");
  EXPECT_EQ(*KeyForIp("2001:db8:1:2::1"), *KeyForIp("2001:db8:1:2:ffff::1"));
  EXPECT_NE(*KeyForIp("2001:db8:1:2::1"), *KeyForIp("2001:db8:1:3::1"));
  EXPECT_FALSE(KeyForIp("").ok());
  EXPECT_FALSE(KeyForIp("192.0.2.300").ok());
  EXPECT_FALSE(KeyForIp("example.com").ok());
  EXPECT_FALSE(KeyForIp(std::string(200, '1')).ok());
  EXPECT_EQ(KeyForUser("Alice@Example.COM"), "user:alice@example.com");
}

TEST(RateTrackerTest, CountsAddUpInTheWindow) {
  auto rt = RateTracker::InMemory("a", Window());
  rt->Add("ip4:192.0.2.7", Counts{.messages = 1, .recipients = 3}, kT0);
  rt->Add("ip4:192.0.2.7", Counts{.messages = 1, .recipients = 2}, kT0 + 500);
  rt->Add("ip4:192.0.2.7", Counts{.auth_failures = 1}, kT0 + 900);
  Counts c = rt->Get("ip4:192.0.2.7", kT0 + 900);
  EXPECT_EQ(c.messages, 2u);
  EXPECT_EQ(c.recipients, 5u);
  EXPECT_EQ(c.auth_failures, 1u);
  EXPECT_EQ(rt->Get("ip4:192.0.2.8", kT0).messages, 0u);
}

TEST(RateTrackerTest, OldSlotsLeaveTheWindow) {
  auto rt = RateTracker::InMemory("a", Window());
  const int64_t slot0 = kT0 - kT0 % 450;
  rt->Add("k", Counts{.messages = 1}, slot0);        // slot 0
  rt->Add("k", Counts{.messages = 10}, slot0 + 450);  // slot 1
  // Slot 7 is the last one that still sees slot 0.
  EXPECT_EQ(rt->Get("k", slot0 + 7 * 450 + 449).messages, 11u);
  EXPECT_EQ(rt->Get("k", slot0 + 8 * 450).messages, 10u);
  EXPECT_EQ(rt->Get("k", slot0 + 9 * 450).messages, 0u);
}

TEST(RateTrackerTest, TopSortsByTheField) {
  auto rt = RateTracker::InMemory("a", Window());
  rt->Add("ip4:10.0.0.1", Counts{.messages = 5, .recipients = 5}, kT0);
  rt->Add("ip4:10.0.0.2", Counts{.messages = 1, .recipients = 50}, kT0);
  rt->Add("ip4:10.0.0.3", Counts{.messages = 3, .recipients = 3}, kT0);
  rt->Add("ip4:10.0.0.4", Counts{.aborts = 1}, kT0);
  std::vector<TopEntry> top = rt->Top(2, "messages", kT0);
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].key, "ip4:10.0.0.1");
  EXPECT_EQ(top[1].key, "ip4:10.0.0.3");
  top = rt->Top(10, "recipients", kT0);
  ASSERT_EQ(top.size(), 3u);  // 10.0.0.4 sent no recipients
  EXPECT_EQ(top[0].key, "ip4:10.0.0.2");
  top = rt->Top(10, "aborts", kT0);
  ASSERT_EQ(top.size(), 1u);
  EXPECT_EQ(top[0].key, "ip4:10.0.0.4");
  ASSERT_EQ(top[0].per_node.size(), 1u);
  EXPECT_EQ(top[0].per_node[0].first, "a");
}

TEST(RateTrackerTest, MergePeerIsIdempotentAndAddsUp) {
  auto a = RateTracker::InMemory("a", Window());
  auto b = RateTracker::InMemory("b", Window());
  a->Add("k", Counts{.messages = 2}, kT0);
  b->Add("k", Counts{.messages = 3, .recipients = 4}, kT0);
  std::vector<SlotCount> from_b = b->LocalSlotsSince(0);
  ASSERT_EQ(from_b.size(), 1u);
  EXPECT_EQ(from_b[0].node_id, "b");
  a->MergePeer(from_b);
  a->MergePeer(from_b);  // the same report twice changes nothing
  EXPECT_EQ(a->Get("k", kT0).messages, 5u);
  EXPECT_EQ(a->Get("k", kT0).recipients, 4u);
  // An older (smaller) report does not lower what is known.
  SlotCount stale = from_b[0];
  stale.counts.messages = 1;
  a->MergePeer({stale});
  EXPECT_EQ(a->Get("k", kT0).messages, 5u);
  // Only a's own slots are gossiped by a.
  std::vector<SlotCount> from_a = a->LocalSlotsSince(0);
  ASSERT_EQ(from_a.size(), 1u);
  EXPECT_EQ(from_a[0].node_id, "a");
  EXPECT_TRUE(a->LocalSlotsSince(kT0 + 1).empty());
  std::vector<TopEntry> top = a->Top(1, "messages", kT0);
  ASSERT_EQ(top.size(), 1u);
  EXPECT_EQ(top[0].per_node.size(), 2u);
}

TEST(RateTrackerTest, TakeLocalChangesReturnsEachChangedKeyOnce) {
  auto a = RateTracker::InMemory("a", Window());
  a->Add("k1", Counts{.messages = 1}, kT0);
  a->Add("k1", Counts{.messages = 1}, kT0);
  a->Add("k2", Counts{.messages = 4}, kT0);
  a->MergePeer({SlotCount{"k3", "b", kT0, Counts{.messages = 9}}});
  std::vector<SlotCount> got = a->TakeLocalChanges(kT0);
  ASSERT_EQ(got.size(), 2u);  // k1 and k2, ours only; k3 is a peer's
  uint64_t total = 0;
  for (const SlotCount& s : got) {
    EXPECT_EQ(s.node_id, "a");
    total += s.counts.messages;
  }
  EXPECT_EQ(total, 6u);
  EXPECT_TRUE(a->TakeLocalChanges(kT0).empty());  // nothing new since
  a->Add("k2", Counts{.messages = 1}, kT0 + 1);
  got = a->TakeLocalChanges(kT0 + 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].key, "k2");
  EXPECT_EQ(got[0].counts.messages, 5u);  // the slot as it stands
}

TEST(RateTrackerTest, MemoryIsBounded) {
  RateWindow w = Window();
  w.max_keys = 64;
  auto rt = RateTracker::InMemory("a", w);
  for (int i = 0; i < 10000; ++i) {
    rt->Add("ip4:10.0." + std::to_string(i / 256) + "." +
                std::to_string(i % 256),
            Counts{.messages = 1}, kT0);
  }
  EXPECT_LE(rt->KeyCount(), 64u);
  EXPECT_GT(rt->KeyCount(), 0u);
  // The most recent key is still there.
  EXPECT_EQ(rt->Get("ip4:10.0.39.15", kT0).messages, 1u);
}

TEST(RateTrackerTest, ConcurrentAddsAllCount) {
  auto rt = RateTracker::InMemory("a", Window());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&rt] {
      for (int i = 0; i < 2000; ++i) {
        rt->Add("ip4:10.0.0." + std::to_string(i % 10), Counts{.messages = 1},
                kT0);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  uint64_t sum = 0;
  for (const TopEntry& e : rt->Top(100, "messages", kT0)) sum += e.total.messages;
  EXPECT_EQ(sum, 8000u);
}

class PersistTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/zm-ratetrack-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    node_.home = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(node_.home); }
  NodeDir node_;
};

TEST_F(PersistTest, StateSurvivesReopen) {
  {
    auto rt = RateTracker::Open(node_, "a", Window());
    ASSERT_TRUE(rt.ok()) << rt.status();
    (*rt)->Add("ip4:192.0.2.7", Counts{.messages = 2, .recipients = 7}, kT0);
    (*rt)->MergePeer({SlotCount{"ip4:192.0.2.7", "b", kT0, {.messages = 1}}});
  }  // destruction flushes
  auto rt = RateTracker::Open(node_, "a", Window());
  ASSERT_TRUE(rt.ok()) << rt.status();
  Counts c = (*rt)->Get("ip4:192.0.2.7", kT0 + 10);
  EXPECT_EQ(c.messages, 3u);
  EXPECT_EQ(c.recipients, 7u);
  (*rt)->Add("ip4:192.0.2.7", Counts{.messages = 1}, kT0 + 20);
  EXPECT_EQ((*rt)->Get("ip4:192.0.2.7", kT0 + 20).messages, 4u);
}

TEST_F(PersistTest, ReadOnlyViewWhileTheWriterRuns) {
  auto rt = RateTracker::Open(node_, "a", Window());
  ASSERT_TRUE(rt.ok()) << rt.status();
  (*rt)->Add("user:alice", Counts{.messages = 4}, kT0);
  ASSERT_TRUE((*rt)->Flush().ok());
  auto view = RateTracker::OpenReadOnly(node_, Window());
  ASSERT_TRUE(view.ok()) << view.status();
  std::vector<TopEntry> top = (*view)->Top(5, "messages", kT0);
  ASSERT_EQ(top.size(), 1u);
  EXPECT_EQ(top[0].key, "user:alice");
  EXPECT_EQ(top[0].total.messages, 4u);
  // A second writer is refused (RocksDB's lock), not silently shared.
  EXPECT_FALSE(RateTracker::Open(node_, "a", Window()).ok());
}

TEST_F(PersistTest, EvictedKeysLeaveTheDatabase) {
  RateWindow w = Window();
  w.max_keys = 16;  // one per shard
  {
    auto rt = RateTracker::Open(node_, "a", w);
    ASSERT_TRUE(rt.ok()) << rt.status();
    for (int i = 0; i < 500; ++i) {
      (*rt)->Add("k" + std::to_string(i), Counts{.messages = 1}, kT0);
    }
  }
  auto view = RateTracker::OpenReadOnly(node_, Window());
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_LE((*view)->KeyCount(), 16u);
}

}  // namespace
}  // namespace zm::ratetrack
