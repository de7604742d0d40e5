// FleetState in RocksDB: a restart restores every record, the digest, the
// version counter and the ETRN claims; a lost store recovers its counter
// from peers.
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
using testing::Slot;

class FleetStatePersistTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/zm-fleetstate-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<FleetState> Open(uint64_t generation) {
    auto st = FleetState::Open(dir_ + "/db/cluster", "a", generation,
                               clock_.Options());
    EXPECT_TRUE(st.ok()) << st.status();
    return st.ok() ? std::move(*st) : nullptr;
  }

  std::string dir_;
  FakeClock clock_;
};

TEST_F(FleetStatePersistTest, RestartRestoresEverything) {
  constexpr int64_t kSlot = kT0Ms / 1000;
  std::string before;
  std::string request_id;
  uint64_t last_version = 0;
  {
    auto a = Open(1);
    ASSERT_NE(a, nullptr);
    ASSERT_TRUE(a->PutLocalRates({Slot("ip4:192.0.2.7", kSlot, 40)}).ok());
    PolicySpec spec;
    spec.subject = "198.51.100.0/24";
    ASSERT_TRUE(a->PolicyPut(spec).ok());
    ASSERT_TRUE(a->PolicyDelete("198.51.100.0/24").ok());
    auto req = a->StartEtrn("example.com", 600000);
    ASSERT_TRUE(req.ok());
    request_id = req->id();
    EXPECT_TRUE(*a->ClaimEtrn(request_id));
    // Something from a peer, too.
    auto b = Mem("b", clock_);
    ASSERT_TRUE(b->PutLocalRates({Slot("ip4:192.0.2.7", kSlot, 30)}).ok());
    ASSERT_TRUE(b->StartEtrn("example.org", 600000).ok());
    ASSERT_TRUE(a->Apply(b->DeltaFor(a->GetDigest(), 1 << 20).delta).ok());
    before = Fingerprint(*a, clock_.now_ms);
    v1::Digest digest = a->GetDigest();
    for (const auto& ov : digest.origins()) {
      if (ov.node_id() == "a") last_version = ov.version();
    }
  }
  auto a = Open(2);  // the next start of the node
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(before, Fingerprint(*a, clock_.now_ms));
  // The window still holds this node's earlier counts: no fresh budget.
  uint64_t total = 0;
  for (const v1::RateSlot& s :
       a->RatesInWindow(kT0Ms / 1000 - 3600, "ip4:192.0.2.7")) {
    total += s.messages();
  }
  EXPECT_EQ(total, 70u);
  // TopRates' running totals are rebuilt from the stored slots.
  std::vector<RateTotal> top = a->TopRates(kSlot, 5, "messages", nullptr);
  ASSERT_EQ(top.size(), 1u);
  EXPECT_EQ(top[0].counts.messages, 70u);
  // The claim survived: the request is not acted on again.
  EXPECT_FALSE(*a->ClaimEtrn(request_id));
  ASSERT_EQ(a->EtrnUnclaimed().size(), 1u);  // b's, never claimed
  EXPECT_EQ(a->EtrnUnclaimed()[0].domain(), "example.org");
  // The version counter goes on from where it was.
  auto more = a->PutLocalRates({Slot("ip4:192.0.2.7", kT0Ms / 1000, 1)});
  ASSERT_TRUE(more.ok());
  ASSERT_EQ(more->size(), 1u);
  EXPECT_EQ((*more)[0].version(), last_version + 1);
  EXPECT_EQ((*more)[0].generation(), 2u);
}

TEST_F(FleetStatePersistTest, ExpiryAndFloorsSurviveARestart) {
  {
    auto a = Open(1);
    ASSERT_NE(a, nullptr);
    PolicySpec spec;
    spec.subject = "example.com";
    ASSERT_TRUE(a->PolicyPut(spec).ok());
    ASSERT_TRUE(a->PolicyDelete("example.com").ok());
    clock_.now_ms += 25LL * 3600 * 1000;
    auto st = a->Expire();
    ASSERT_TRUE(st.ok());
    EXPECT_EQ(st->policies, 1u);
  }
  auto a = Open(2);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->Stats().policies, 0u);
  // A peer that never saw the tombstone is told to resync.
  EXPECT_FALSE(a->DeltaFor(v1::Digest(), 1 << 20).full_resync_origins.empty());
}

TEST_F(FleetStatePersistTest, ALostStoreTakesItsCounterBackFromPeers) {
  auto b = Mem("b", clock_);
  {
    auto a = Open(1);
    ASSERT_NE(a, nullptr);
    for (int i = 0; i < 5; ++i) {
      ASSERT_TRUE(a->PutLocalRates(
                       {Slot("user:u" + std::to_string(i), kT0Ms / 1000, 1)})
                      .ok());
    }
    testing::SyncPair(*a, *b);
  }
  std::filesystem::remove_all(dir_ + "/db/cluster");
  auto a = Open(2);
  ASSERT_NE(a, nullptr);
  testing::SyncPair(*a, *b);
  auto next = a->PutLocalRates({Slot("user:new", kT0Ms / 1000, 1)});
  ASSERT_TRUE(next.ok());
  ASSERT_EQ(next->size(), 1u);
  EXPECT_EQ((*next)[0].version(), 6u);  // past what peers remember
  testing::SyncPair(*a, *b);
  EXPECT_EQ(Fingerprint(*a, clock_.now_ms), Fingerprint(*b, clock_.now_ms));
}

TEST_F(FleetStatePersistTest, BadArgumentsAreRefused) {
  EXPECT_FALSE(FleetState::Open(dir_ + "/x", "", 1, clock_.Options()).ok());
  EXPECT_FALSE(FleetState::InMemory("has space", 1, clock_.Options()).ok());
  FleetStateOptions bad = clock_.Options();
  bad.rate_slot_seconds = 0;
  EXPECT_FALSE(FleetState::InMemory("a", 1, bad).ok());
}

}  // namespace
}  // namespace zm::cluster
