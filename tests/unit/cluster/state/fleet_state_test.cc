// FleetState through its public interface: local writes, anti-entropy
// between in-memory stores, the policy overlay, ETRN, refusals, expiry.
#include "cluster/state/fleet_state.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <thread>
#include <vector>

#include "tests/unit/cluster/state/state_testing.h"

namespace zm::cluster {
namespace {

using testing::FakeClock;
using testing::kT0Ms;
using testing::Mem;
using testing::Slot;
using testing::SyncPair;

constexpr int64_t kSlot = kT0Ms / 1000;  // a slot start (450 s aligned)

uint64_t DigestOf(const FleetState& st, const std::string& origin) {
  v1::Digest digest = st.GetDigest();
  for (const v1::OriginVersion& ov : digest.origins()) {
    if (ov.node_id() == origin) return ov.version();
  }
  return 0;
}

TEST(HlcTest, NowIsMonotonicAndPassesObservedTimes) {
  Hlc clock("b");
  v1::Hlc t1 = clock.Now(1000);
  v1::Hlc t2 = clock.Now(999);  // wall clock went back
  EXPECT_LT(CompareHlc(t1, t2), 0);
  v1::Hlc remote;
  remote.set_wall_ms(5000);
  remote.set_logical(7);
  remote.set_node_id("a");
  clock.Update(remote);
  v1::Hlc t3 = clock.Now(1001);
  EXPECT_LT(CompareHlc(remote, t3), 0);
  EXPECT_EQ(t3.wall_ms(), 5000);
  EXPECT_EQ(t3.logical(), 8u);
  // Node id breaks ties.
  v1::Hlc same = t3;
  same.set_node_id("a");
  EXPECT_LT(CompareHlc(same, t3), 0);
}

TEST(FleetStateTest, LocalRatesMergeByMaxAndBumpVersion) {
  FakeClock clock;
  auto a = Mem("a", clock);
  auto got = a->PutLocalRates({Slot("ip4:192.0.2.7", kSlot, 3)});
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].node_id(), "a");
  EXPECT_EQ((*got)[0].generation(), 1u);
  EXPECT_EQ((*got)[0].version(), 1u);
  // Lower count: nothing changes, no version spent.
  got = a->PutLocalRates({Slot("ip4:192.0.2.7", kSlot, 2)});
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got->empty());
  got = a->PutLocalRates({Slot("ip4:192.0.2.7", kSlot, 5)});
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].messages(), 5u);
  EXPECT_EQ((*got)[0].version(), 2u);
  EXPECT_EQ(DigestOf(*a, "a"), 2u);
  // Unaligned slot and a foreign node are refused.
  EXPECT_FALSE(a->PutLocalRates({Slot("ip4:192.0.2.7", kSlot + 1, 1)}).ok());
  v1::RateSlot foreign = Slot("ip4:192.0.2.7", kSlot, 9);
  foreign.set_node_id("b");
  EXPECT_FALSE(a->PutLocalRates({foreign}).ok());
}

TEST(FleetStateTest, TwoStoresConverge) {
  FakeClock clock;
  auto a = Mem("a", clock);
  auto b = Mem("b", clock);
  ASSERT_TRUE(a->PutLocalRates({Slot("ip4:192.0.2.7", kSlot, 3)}).ok());
  ASSERT_TRUE(b->PutLocalRates({Slot("ip4:192.0.2.7", kSlot, 4)}).ok());
  PolicySpec spec;
  spec.subject = "198.51.100.9/24";
  spec.reason = "spam run";
  ASSERT_TRUE(a->PolicyPut(spec).ok());
  SyncPair(*a, *b);
  EXPECT_EQ(testing::Fingerprint(*a, kT0Ms), testing::Fingerprint(*b, kT0Ms));
  EXPECT_EQ(b->RatesInWindow(kSlot, "ip4:192.0.2.7").size(), 2u);
  auto hit = b->PolicyLookup("198.51.100.0/24", kT0Ms);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->reason(), "spam run");
  EXPECT_EQ(hit->author_node(), "a");
  // Nothing left to send either way.
  EXPECT_EQ(a->DeltaFor(b->GetDigest(), 1 << 20).delta.ByteSizeLong(), 0u);
}

TEST(FleetStateTest, ApplyReportsChangesAndIsIdempotent) {
  FakeClock clock;
  auto a = Mem("a", clock);
  auto b = Mem("b", clock);
  ASSERT_TRUE(a->PutLocalRates({Slot("user:alice", kSlot, 1)}).ok());
  auto req = a->StartEtrn("example.com", 60000);
  ASSERT_TRUE(req.ok()) << req.status();
  DeltaBatch d = a->DeltaFor(b->GetDigest(), 1 << 20);
  auto first = b->Apply(d.delta);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->rates.size(), 1u);
  ASSERT_EQ(first->etrn_requests.size(), 1u);
  EXPECT_EQ(first->etrn_requests[0].id(), req->id());
  auto again = b->Apply(d.delta);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->empty());
}

TEST(FleetStateTest, CutDeltasAdvanceTheDigestMonotonically) {
  FakeClock clock;
  auto a = Mem("a", clock);
  auto c = Mem("c", clock);
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(
        a->PutLocalRates({Slot("ip4:10.0.0." + std::to_string(i), kSlot, 1)})
            .ok());
    ASSERT_TRUE(
        c->PutLocalRates({Slot("ip4:10.0.1." + std::to_string(i), kSlot, 1)})
            .ok());
  }
  auto b = Mem("b", clock);
  // a learns c's records, then serves both origins to b in small pieces.
  SyncPair(*a, *c);
  uint64_t last_a = 0, last_c = 0;
  int rounds = 0;
  for (; rounds < 1000; ++rounds) {
    DeltaBatch d = a->DeltaFor(b->GetDigest(), 300);
    ASSERT_TRUE(b->Apply(d.delta).ok());
    uint64_t now_a = DigestOf(*b, "a"), now_c = DigestOf(*b, "c");
    EXPECT_GE(now_a, last_a);
    EXPECT_GE(now_c, last_c);
    // The digest never claims a record b does not hold.
    EXPECT_EQ(b->RatesInWindow(0).size(), static_cast<size_t>(now_a + now_c));
    last_a = now_a;
    last_c = now_c;
    if (!d.more) break;
  }
  EXPECT_GT(rounds, 3);
  EXPECT_EQ(last_a, 50u);
  EXPECT_EQ(last_c, 50u);
}

TEST(FleetStateTest, PolicyLastWriterWinsAndTombstones) {
  FakeClock clock;
  auto a = Mem("a", clock);
  auto b = Mem("b", clock);
  PolicySpec spec;
  spec.subject = "Spammer.Example";
  spec.action = v1::POLICY_ACTION_REJECT;
  ASSERT_TRUE(a->PolicyPut(spec).ok());
  clock.now_ms += 10;
  spec.action = v1::POLICY_ACTION_DEFER;
  ASSERT_TRUE(b->PolicyPut(spec).ok());  // later: wins
  SyncPair(*a, *b);
  auto w = a->PolicyLookup("spammer.example", clock.now_ms);
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(w->action(), v1::POLICY_ACTION_DEFER);
  // a deletes: the tombstone orders after b's put even with a's clock
  // behind.
  clock.now_ms -= 5;
  auto tomb = a->PolicyDelete("spammer.example");
  ASSERT_TRUE(tomb.ok());
  EXPECT_TRUE(tomb->deleted());
  SyncPair(*a, *b);
  EXPECT_FALSE(b->PolicyLookup("spammer.example", clock.now_ms).has_value());
  EXPECT_TRUE(b->PolicyLive(clock.now_ms).empty());
  // A newer put beats the tombstone.
  clock.now_ms += 1000;
  ASSERT_TRUE(b->PolicyPut(spec).ok());
  SyncPair(*a, *b);
  EXPECT_TRUE(a->PolicyLookup("spammer.example", clock.now_ms).has_value());
}

TEST(FleetStateTest, PolicyExpiresByTtl) {
  FakeClock clock;
  auto a = Mem("a", clock);
  PolicySpec spec;
  spec.subject = "2001:DB8::1/48";
  spec.ttl_ms = 60000;
  auto e = a->PolicyPut(spec);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->subject(), "2001:db8::/48");
  EXPECT_TRUE(a->PolicyLookup("2001:db8::/48", clock.now_ms).has_value());
  EXPECT_FALSE(
      a->PolicyLookup("2001:db8::/48", clock.now_ms + 60000).has_value());
}

TEST(FleetStateTest, SubjectsAreNormalised) {
  EXPECT_EQ(*NormalizePolicySubject("192.0.2.77/24"), "192.0.2.0/24");
  EXPECT_EQ(*NormalizePolicySubject("User@Example.COM"), "user@example.com");
  EXPECT_EQ(*NormalizePolicySubject("::FFFF:1.2.3.4"), "::ffff:1.2.3.4");
  for (const char* bad : {"", "a b", "1.2.3.4/33", "x@", "@x", "-a.com",
                          "a..com", "1.2.3.4/-1", "ex ample.com"}) {
    EXPECT_FALSE(NormalizePolicySubject(bad).ok()) << bad;
  }
}

TEST(FleetStateTest, EtrnIsClaimedOnceAndResultsFlowBack) {
  FakeClock clock;
  auto a = Mem("a", clock);
  auto b = Mem("b", clock);
  auto req = a->StartEtrn("example.com", 3600 * 1000);
  ASSERT_TRUE(req.ok());
  SyncPair(*a, *b);
  ASSERT_EQ(b->EtrnUnclaimed().size(), 1u);
  EXPECT_TRUE(*b->ClaimEtrn(req->id()));
  EXPECT_FALSE(*b->ClaimEtrn(req->id()));
  EXPECT_TRUE(b->EtrnUnclaimed().empty());
  ASSERT_TRUE(b->RecordEtrnResult(req->id(), 250, "queued 3").ok());
  SyncPair(*a, *b);
  auto results = a->EtrnResults(req->id());
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].node_id(), "b");
  EXPECT_EQ(results[0].code(), 250);
  // Expiry drops the request; a late copy from a stale peer is ignored.
  clock.now_ms += 3600 * 1000;
  EXPECT_TRUE(b->EtrnRequests(clock.now_ms).empty());
  auto c = Mem("c", clock);
  v1::Delta stale;
  *stale.add_etrn_requests() = *req;
  auto applied = c->Apply(stale);
  ASSERT_TRUE(applied.ok());
  EXPECT_TRUE(applied->etrn_requests.empty());
}

TEST(FleetStateTest, MalformedRecordsAreRefusedAndCounted) {
  FakeClock clock;
  auto a = Mem("a", clock);
  v1::Delta d;
  v1::RateSlot ok = Slot("ip4:192.0.2.1", kSlot, 1);
  ok.set_node_id("p");
  ok.set_version(1);
  *d.add_rates() = ok;
  v1::RateSlot r = ok;
  r.set_key("");
  r.set_version(2);
  *d.add_rates() = r;  // empty key
  r = ok;
  r.set_slot_start(kSlot + 7);
  r.set_version(3);
  *d.add_rates() = r;  // unaligned
  r = ok;
  r.set_slot_start(kSlot + 450 * 1000);
  r.set_version(4);
  *d.add_rates() = r;  // far future
  v1::PolicyEntry p;
  p.set_subject("not a subject");
  p.set_author_node("p");
  p.mutable_hlc()->set_node_id("p");
  p.mutable_hlc()->set_wall_ms(kT0Ms);
  p.set_created_unix_ms(kT0Ms);
  p.set_action(v1::POLICY_ACTION_REJECT);
  p.set_version(5);
  *d.add_policies() = p;  // unparsable subject
  p.set_subject("example.com");
  p.set_action(v1::POLICY_ACTION_UNSPECIFIED);
  p.set_version(6);
  *d.add_policies() = p;  // no action
  v1::EtrnRequest e;
  e.set_id("x");
  e.set_domain("example.com");
  e.set_origin_node("p");
  e.set_created_unix_ms(kT0Ms);
  e.set_expires_unix_ms(kT0Ms - 1);
  e.set_version(7);
  *d.add_etrn_requests() = e;  // expires before it starts
  auto got = a->Apply(d);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->rejected, 6u);
  EXPECT_FALSE(got->first_rejection.ok());
  EXPECT_EQ(got->rates.size(), 1u);
  EXPECT_EQ(a->Stats().rejected, 6u);
  EXPECT_EQ(a->Stats().policies, 0u);
}

TEST(FleetStateTest, PerOriginBoundRefusesMore) {
  FakeClock clock;
  FleetStateOptions opt = clock.Options();
  opt.max_rate_slots_per_origin = 3;
  auto a = FleetState::InMemory("a", 1, opt);
  ASSERT_TRUE(a.ok());
  auto b = Mem("b", clock);
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(
        b->PutLocalRates({Slot("user:u" + std::to_string(i), kSlot, 1)}).ok());
  }
  auto got = (*a)->Apply(b->DeltaFor(v1::Digest(), 1 << 20).delta);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->rates.size(), 3u);
  EXPECT_EQ(got->rejected, 2u);
  EXPECT_EQ(got->first_rejection.code(), absl::StatusCode::kResourceExhausted);
}

TEST(FleetStateTest, RateSlotsExpireWithTheWindow) {
  FakeClock clock;
  auto a = Mem("a", clock);
  ASSERT_TRUE(a->PutLocalRates({Slot("user:bob", kSlot, 1)}).ok());
  clock.now_ms += 8 * 450 * 1000 - 1000;
  auto st = a->Expire();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->rate_slots, 0u);
  clock.now_ms += 1000;
  st = a->Expire();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->rate_slots, 1u);
  EXPECT_TRUE(a->RatesInWindow(0).empty());
}

// TopRates sums every node's slots of a key in the window, ranks by the
// field asked (ties by key) and applies the filter to the totals.
TEST(FleetStateTest, TopRatesSumsNodesAndRanks) {
  FakeClock clock;
  auto a = Mem("a", clock);
  auto b = Mem("b", clock);
  v1::RateSlot old = Slot("ip4:192.0.2.1", kSlot - 450, 100);  // before
  v1::RateSlot failing = Slot("ip4:192.0.2.9", kSlot, 0);
  failing.set_auth_failures(7);
  ASSERT_TRUE(a->PutLocalRates({Slot("ip4:192.0.2.1", kSlot, 3),
                                Slot("ip4:192.0.2.2", kSlot, 5),
                                Slot("user:carol", kSlot, 5), old, failing})
                  .ok());
  ASSERT_TRUE(b->PutLocalRates({Slot("ip4:192.0.2.1", kSlot, 4)}).ok());
  SyncPair(*a, *b);
  std::vector<RateTotal> top = b->TopRates(kSlot, 10, "messages", nullptr);
  ASSERT_EQ(top.size(), 4u);
  EXPECT_EQ(top[0].key, "ip4:192.0.2.1");  // 3 + 4, the old slot left out
  EXPECT_EQ(top[0].counts.messages, 7u);
  EXPECT_EQ(top[1].key, "ip4:192.0.2.2");  // 5, before user:carol by key
  EXPECT_EQ(top[2].key, "user:carol");
  EXPECT_EQ(top[3].key, "ip4:192.0.2.9");
  EXPECT_EQ(top[3].counts.auth_failures, 7u);
  top = b->TopRates(kSlot, 1, "auth_failures", nullptr);
  ASSERT_EQ(top.size(), 1u);
  EXPECT_EQ(top[0].key, "ip4:192.0.2.9");
  top = b->TopRates(kSlot - 450, 10, "messages",
                    [](std::string_view key, const RateCounts& c) {
                      return key.starts_with("ip4:") && c.messages > 0;
                    });
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].counts.messages, 107u);
  EXPECT_EQ(top[1].key, "ip4:192.0.2.2");
}

// TopRates reads running totals kept as slots are stored, grown, merged
// from peers and expired: after random writes, merges and expiry they
// must equal the sum over every stored slot (RatesInWindow).
TEST(FleetStateTest, TopRatesRunningTotalsMatchTheSlots) {
  FakeClock clock;
  auto a = Mem("a", clock);
  auto b = Mem("b", clock);
  auto c = Mem("c", clock);
  std::mt19937_64 rng(7);
  for (int step = 0; step < 60; ++step) {
    const int64_t now_slot = clock.now_ms.load() / 1000 / 450 * 450;
    for (FleetState* st : {a.get(), b.get(), c.get()}) {
      std::vector<v1::RateSlot> slots;
      for (int k = 0; k < 5; ++k) {
        v1::RateSlot s =
            Slot(fmt::format("ip4:192.0.2.{}", rng() % 12),
                 now_slot - 450 * static_cast<int64_t>(rng() % 2), rng() % 50);
        s.set_auth_failures(rng() % 3);
        slots.push_back(std::move(s));
      }
      ASSERT_TRUE(st->PutLocalRates(slots).ok());
    }
    if (step % 3 == 0) SyncPair(*a, *b);
    if (step % 5 == 0) SyncPair(*b, *c);
    clock.now_ms += 400 * 1000;  // slots fall out of the window over time
    if (step % 4 == 0) {
      for (FleetState* st : {a.get(), b.get(), c.get()}) {
        ASSERT_TRUE(st->Expire().ok());
      }
    }
    const int64_t window = clock.now_ms.load() / 1000 - 3 * 450;
    for (FleetState* st : {a.get(), b.get(), c.get()}) {
      std::map<std::string, std::pair<uint64_t, uint64_t>> want;
      for (const v1::RateSlot& r : st->RatesInWindow(window)) {
        want[r.key()].first += r.messages();
        want[r.key()].second += r.auth_failures();
      }
      std::vector<RateTotal> top =
          st->TopRates(window, 100, "messages", nullptr);
      ASSERT_EQ(top.size(), want.size()) << "step " << step;
      for (const RateTotal& t : top) {
        ASSERT_TRUE(want.contains(t.key)) << t.key;
        EXPECT_EQ(t.counts.messages, want[t.key].first) << t.key;
        EXPECT_EQ(t.counts.auth_failures, want[t.key].second) << t.key;
      }
    }
  }
}

TEST(FleetStateTest, ListenerSeesLocalAndRemoteChanges) {
  FakeClock clock;
  auto a = Mem("a", clock);
  auto b = Mem("b", clock);
  int calls = 0;
  size_t winners = 0;
  b->SetListener([&](const Changes& c) {
    ++calls;
    winners += c.policy_winners.size();
  });
  PolicySpec spec;
  spec.subject = "example.net";
  ASSERT_TRUE(a->PolicyPut(spec).ok());
  SyncPair(*a, *b);
  ASSERT_TRUE(b->PolicyDelete("example.net").ok());
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(winners, 2u);
}

// Writers and gossip on several threads at once (the agent calls the store
// from its gRPC threads): no race (ASan build), and the stores converge.
TEST(FleetStateTest, ConcurrentWritesAndGossipConverge) {
  FakeClock clock;
  auto a = Mem("a", clock);
  auto b = Mem("b", clock);
  std::vector<std::thread> threads;
  for (FleetState* st : {a.get(), b.get()}) {
    threads.emplace_back([st] {
      for (int i = 0; i < 300; ++i) {
        ASSERT_TRUE(st->PutLocalRates({Slot("user:u" + std::to_string(i % 17),
                                            kSlot, static_cast<uint64_t>(i))})
                        .ok());
        PolicySpec spec;
        spec.subject = "192.0.2." + std::to_string(i % 5);
        if (i % 3 == 0) {
          ASSERT_TRUE(st->PolicyDelete(spec.subject).ok());
        } else {
          ASSERT_TRUE(st->PolicyPut(spec).ok());
        }
      }
    });
  }
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) testing::Exchange(*a, *b, 500);
    });
  }
  for (std::thread& t : threads) t.join();
  SyncPair(*a, *b);
  EXPECT_EQ(testing::Fingerprint(*a, kT0Ms), testing::Fingerprint(*b, kT0Ms));
}

}  // namespace
}  // namespace zm::cluster
