// Property tests of the fleet state's CRDTs, randomized with a fixed seed
// (printed on failure; ZM_CRDT_SEED overrides it): merges are commutative,
// associative and idempotent per record and per delta, any order of
// deltas with duplicates converges, anti-entropy between N stores under a
// random size cap converges, tombstones order by Hlc, and a peer behind
// the tombstone horizon resyncs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "cluster/state/fleet_state.h"
#include "tests/unit/cluster/state/state_testing.h"

namespace zm::cluster {
namespace {

using testing::FakeClock;
using testing::Fingerprint;
using testing::kT0Ms;
using testing::Mem;

uint64_t Seed() {
  const char* env = std::getenv("ZM_CRDT_SEED");
  return env != nullptr ? std::strtoull(env, nullptr, 10) : 20261121;
}

// A consistent history of writes by a few origins, as a peer would see
// them: each origin's versions grow, a record key keeps one value per
// version, rate counts only grow, Hlc grows per origin.
class History {
 public:
  // `width`: how many origins, keys, slots and subjects to draw from
  // (small: many writes hit the same record).
  History(std::mt19937_64& rng, uint64_t width) : rng_(rng), width_(width) {}

  // One more write by a random origin; returns it as a one-record delta.
  v1::Delta Write() {
    std::string origin = "n" + std::to_string(Pick(width_));
    uint64_t version = ++versions_[origin];
    int64_t wall = kT0Ms - 60000 + static_cast<int64_t>(Pick(50000));
    v1::Delta d;
    // The digest merges by max like the records; with it the store's
    // DeltaFor (what Fingerprint reads) shows every record held.
    v1::OriginVersion* through = d.add_through();
    through->set_node_id(origin);
    through->set_version(version);
    switch (Pick(5)) {
      case 4: {
        // A node status: the origin's newest publication wins.
        v1::NodeStatus st;
        st.set_node_id(origin);
        int64_t& hw = hlc_wall_[origin];
        hw = std::max(hw + 1, wall);
        st.mutable_hlc()->set_wall_ms(hw);
        st.mutable_hlc()->set_node_id(origin);
        st.set_updated_unix_ms(hw);
        st.set_admin_url("http://" + origin + ":8025/");
        st.mutable_queue()->set_messages(Pick(100));
        st.mutable_history()->set_first_minute_unix(hw / 60000 * 60);
        st.mutable_history()->add_received(Pick(10));
        st.mutable_history()->add_delivered(Pick(10));
        st.mutable_history()->add_deferred(0);
        st.mutable_history()->add_bounced(0);
        st.mutable_history()->add_rejected_policy(0);
        st.mutable_history()->add_rejected_rate(0);
        st.set_version(version);
        *d.add_node_statuses() = st;
        break;
      }
      case 0: {
        std::string key = "ip4:10.0.0." + std::to_string(Pick(width_));
        int64_t slot = kT0Ms / 1000 - 450 * static_cast<int64_t>(Pick(width_));
        std::string id = origin + key + std::to_string(slot);
        v1::RateSlot& last = rates_[id];
        last.set_key(key);
        last.set_node_id(origin);
        last.set_generation(1);
        last.set_slot_start(slot);
        last.set_messages(last.messages() + Pick(5));
        last.set_recipients(last.recipients() + Pick(9));
        last.set_version(version);
        *d.add_rates() = last;
        break;
      }
      case 1: {
        v1::PolicyEntry p;
        p.set_subject("s" + std::to_string(Pick(width_)) + ".example");
        p.set_author_node(origin);
        int64_t& hw = hlc_wall_[origin];
        hw = std::max(hw + 1, wall);
        p.mutable_hlc()->set_wall_ms(hw);
        p.mutable_hlc()->set_node_id(origin);
        p.set_created_unix_ms(hw);
        if (Pick(3) == 0) {
          p.set_deleted(true);
        } else {
          p.set_action(Pick(2) ? v1::POLICY_ACTION_REJECT
                               : v1::POLICY_ACTION_DEFER);
          p.set_reason("r" + std::to_string(Pick(100)));
        }
        p.set_version(version);
        *d.add_policies() = p;
        break;
      }
      case 2: {
        v1::EtrnRequest r;
        r.set_id(origin + "-" + std::to_string(version));
        r.set_domain("d" + std::to_string(Pick(3)) + ".example");
        r.set_origin_node(origin);
        r.set_created_unix_ms(wall);
        r.set_expires_unix_ms(kT0Ms + 3600 * 1000);
        r.set_version(version);
        *d.add_etrn_requests() = r;
        break;
      }
      default: {
        v1::EtrnResult r;
        r.set_request_id("n" + std::to_string(Pick(width_)) + "-" +
                         std::to_string(Pick(4 * width_)));
        r.set_node_id(origin);
        r.set_done_unix_ms(wall);
        r.set_code(Pick(2) ? 250 : 458);
        r.set_text("t" + std::to_string(Pick(10)));
        r.set_version(version);
        *d.add_etrn_results() = r;
        break;
      }
    }
    return d;
  }

  uint64_t Pick(uint64_t n) { return rng_() % n; }

 private:
  std::mt19937_64& rng_;
  const uint64_t width_;
  std::map<std::string, uint64_t> versions_;
  std::map<std::string, v1::RateSlot> rates_;
  std::map<std::string, int64_t> hlc_wall_;
};

v1::Delta Union(const std::vector<v1::Delta>& parts) {
  v1::Delta out;
  for (const v1::Delta& p : parts) out.MergeFrom(p);
  return out;
}

std::string ApplyAll(FakeClock& clock, const std::vector<v1::Delta>& deltas) {
  auto st = Mem("observer", clock);
  for (const v1::Delta& d : deltas) {
    auto got = st->Apply(d);
    EXPECT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->rejected, 0u) << got->first_rejection;
  }
  return Fingerprint(*st, clock.now_ms);
}

TEST(CrdtPropertyTest, RecordMergeIsCommutativeAssociativeIdempotent) {
  uint64_t seed = Seed();
  SCOPED_TRACE(::testing::Message() << "seed=" << seed);
  std::mt19937_64 rng(seed);
  FakeClock clock;
  for (int iter = 0; iter < 300; ++iter) {
    History h(rng, 2);
    std::vector<v1::Delta> history;
    for (int i = 0; i < 12; ++i) history.push_back(h.Write());
    // Three records (often versions of the same key) in every order, and
    // grouped both ways, and each twice.
    v1::Delta a = history[h.Pick(12)], b = history[h.Pick(12)],
              c = history[h.Pick(12)];
    std::string abc = ApplyAll(clock, {a, b, c});
    EXPECT_EQ(abc, ApplyAll(clock, {c, b, a})) << "iter " << iter;
    EXPECT_EQ(abc, ApplyAll(clock, {b, a, c})) << "iter " << iter;
    EXPECT_EQ(abc, ApplyAll(clock, {Union({a, b}), c})) << "iter " << iter;
    EXPECT_EQ(abc, ApplyAll(clock, {a, Union({b, c})})) << "iter " << iter;
    EXPECT_EQ(abc, ApplyAll(clock, {a, a, b, c, b, c})) << "iter " << iter;
    if (HasFailure()) return;
  }
}

TEST(CrdtPropertyTest, DeltasInAnyOrderWithDuplicatesConverge) {
  uint64_t seed = Seed() + 1;
  SCOPED_TRACE(::testing::Message() << "seed=" << seed);
  std::mt19937_64 rng(seed);
  FakeClock clock;
  for (int iter = 0; iter < 60; ++iter) {
    History h(rng, 3);
    std::vector<v1::Delta> writes;
    for (int i = 0; i < 80; ++i) writes.push_back(h.Write());
    // Deltas: random groups of writes.
    std::vector<v1::Delta> deltas;
    for (int i = 0; i < 20; ++i) {
      std::vector<v1::Delta> group;
      for (uint64_t k = 0, n = 1 + h.Pick(8); k < n; ++k) {
        group.push_back(writes[h.Pick(writes.size())]);
      }
      deltas.push_back(Union(group));
    }
    deltas.push_back(Union(writes));  // make sure everything is in
    std::string expect = ApplyAll(clock, deltas);
    for (int order = 0; order < 4; ++order) {
      std::vector<v1::Delta> shuffled = deltas;
      for (uint64_t k = 0, n = h.Pick(10); k < n; ++k) {
        shuffled.push_back(deltas[h.Pick(deltas.size())]);  // duplicates
      }
      std::shuffle(shuffled.begin(), shuffled.end(), rng);
      EXPECT_EQ(expect, ApplyAll(clock, shuffled))
          << "iter " << iter << " order " << order;
    }
    if (HasFailure()) return;
  }
}

// N stores, each writing its own records; random exchanges under a random
// cap until nothing moves: every store holds the same state.
// With `day_passes`, every other run then moves the clock past the
// tombstone horizon, lets some nodes expire first and gossip with the rest
// (resyncs under the cap), then all.
void AntiEntropyConverges(uint64_t seed, bool day_passes) {
  SCOPED_TRACE(::testing::Message() << "seed=" << seed);
  std::mt19937_64 rng(seed);
  for (int iter = 0; iter < 15; ++iter) {
    FakeClock clock;
    size_t n = 3 + rng() % 6;
    std::vector<std::unique_ptr<FleetState>> nodes;
    for (size_t i = 0; i < n; ++i) {
      nodes.push_back(Mem("node" + std::to_string(i), clock));
    }
    auto pick = [&](size_t k) { return static_cast<size_t>(rng() % k); };
    // Writes interleaved with partial gossip.
    for (int round = 0; round < 40; ++round) {
      FleetState& w = *nodes[pick(n)];
      clock.now_ms += 1 + pick(20);
      switch (pick(5)) {
        case 4: {
          v1::NodeStatus st;
          st.mutable_queue()->set_messages(pick(100));
          st.set_admin_url("http://x:8025/");
          ASSERT_TRUE(w.PublishNodeStatus(st).ok());
          break;
        }
        case 0: {
          v1::RateSlot s = testing::Slot("user:u" + std::to_string(pick(6)),
                                         kT0Ms / 1000, 1 + pick(50));
          ASSERT_TRUE(w.PutLocalRates({s}).ok());
          break;
        }
        case 1: {
          PolicySpec spec;
          spec.subject = "192.0.2." + std::to_string(pick(4));
          spec.reason = "why" + std::to_string(pick(9));
          ASSERT_TRUE(w.PolicyPut(spec).ok());
          break;
        }
        case 2:
          ASSERT_TRUE(
              w.PolicyDelete("192.0.2." + std::to_string(pick(4))).ok());
          break;
        default: {
          auto req = w.StartEtrn("example.com", 600000);
          ASSERT_TRUE(req.ok());
          ASSERT_TRUE(w.RecordEtrnResult(req->id(), 250, "ok").ok());
          break;
        }
      }
      size_t a = pick(n), b = pick(n);
      if (a != b) testing::Exchange(*nodes[a], *nodes[b], 200 + pick(3000));
    }
    if (day_passes && iter % 2 == 1) {
      // A day passes: some nodes drop tombstones and what they overrode
      // first, gossip with the rest (resyncs under the cap), then all do.
      clock.now_ms += 25LL * 3600 * 1000;
      for (size_t i = 0; i < n; ++i) {
        if (pick(2) == 0) {
          ASSERT_TRUE(nodes[i]->Expire().ok());
        }
      }
      for (int round = 0; round < 20; ++round) {
        size_t a = pick(n), b = pick(n);
        if (a != b) testing::Exchange(*nodes[a], *nodes[b], 200 + pick(3000));
      }
      for (size_t i = 0; i < n; ++i) ASSERT_TRUE(nodes[i]->Expire().ok());
    }
    // Gossip rounds: each node with a random peer, random cap.
    bool moved = true;
    int rounds = 0;
    for (; moved && rounds < 2000; ++rounds) {
      moved = false;
      for (size_t a = 0; a < n; ++a) {
        size_t b = (a + 1 + pick(n - 1)) % n;
        moved |= testing::Exchange(*nodes[a], *nodes[b], 200 + pick(3000));
      }
    }
    ASSERT_LT(rounds, 2000) << "no quiescence, iter " << iter;
    std::string first = Fingerprint(*nodes[0], clock.now_ms);
    for (size_t i = 1; i < n; ++i) {
      ASSERT_EQ(first, Fingerprint(*nodes[i], clock.now_ms))
          << "iter " << iter << " node " << i;
    }
  }
}

TEST(CrdtPropertyTest, AntiEntropyBetweenNStoresConverges) {
  AntiEntropyConverges(Seed() + 2, /*day_passes=*/false);
}

// Some stores drop tombstones past the horizon while others never saw
// them (a fleet split for more than the horizon): the policy live sets
// (Delta.policy_live) still bring every store to the same records. Seeds
// 1 and 7 once failed here (a store kept a put whose tombstone the
// others had dropped); with ZM_CRDT_SEED set only that seed runs.
TEST(CrdtPropertyTest, AntiEntropyAcrossTheHorizonConverges) {
  if (std::getenv("ZM_CRDT_SEED") != nullptr) {
    AntiEntropyConverges(Seed() + 2, /*day_passes=*/true);
    return;
  }
  // The default seed, then ZM_CRDT_SEED=1..8 (1 and 7 failed before).
  for (uint64_t k = 0; k <= 8; ++k) {
    uint64_t seed = (k == 0 ? Seed() : k) + 2;
    AntiEntropyConverges(seed, /*day_passes=*/true);
    if (HasFailure()) return;
  }
}

// The case the policy live sets exist for: b deletes a subject a put,
// without having seen the put; z only ever got the put, x only the
// tombstone; a and b saw both (and dropped the put). A day later the
// tombstone is gone everywhere, and x takes the put from z as new. Without
// live sets (their field cleared in transit) a and b keep no put while x
// and z keep it for good, with equal digests; with them every store drops
// it.
TEST(CrdtPropertyTest, APutWhoseTombstoneWasDroppedDiesEverywhere) {
  for (bool live_sets : {false, true}) {
    SCOPED_TRACE(::testing::Message() << "live_sets=" << live_sets);
    FakeClock clock;
    auto a = Mem("a", clock);
    auto b = Mem("b", clock);
    auto x = Mem("x", clock);
    auto z = Mem("z", clock);
    auto exchange = [&](FleetState& from, FleetState& to) {
      DeltaBatch pull = to.DeltaFor(from.GetDigest(), 1 << 20);
      if (!live_sets) pull.delta.clear_policy_live();
      EXPECT_TRUE(from.Apply(pull.delta).ok());
      DeltaBatch push = from.DeltaFor(to.GetDigest(), 1 << 20);
      if (!live_sets) push.delta.clear_policy_live();
      EXPECT_TRUE(to.Apply(push.delta).ok());
      return DeltaHasContent(pull.delta) || DeltaHasContent(push.delta);
    };
    auto sync = [&](FleetState& p, FleetState& q) {
      for (int i = 0; i < 100 && exchange(p, q); ++i) {
      }
    };
    PolicySpec spec;
    spec.subject = "bad.example";
    ASSERT_TRUE(a->PolicyPut(spec).ok());
    sync(*a, *z);
    clock.now_ms += 1000;
    ASSERT_TRUE(b->PolicyDelete("bad.example").ok());
    sync(*b, *x);
    sync(*a, *b);
    EXPECT_FALSE(a->PolicyLookup("bad.example", clock.now_ms));
    EXPECT_TRUE(z->PolicyLookup("bad.example", clock.now_ms));
    clock.now_ms += 25LL * 3600 * 1000;
    for (auto* st : {a.get(), b.get(), x.get(), z.get()}) {
      ASSERT_TRUE(st->Expire().ok());
    }
    std::vector<FleetState*> all = {x.get(), z.get(), a.get(), b.get()};
    for (int round = 0; round < 5; ++round) {
      for (size_t i = 0; i < all.size(); ++i) {
        for (size_t j = 0; j < all.size(); ++j) {
          if (i != j) sync(*all[i], *all[j]);
        }
      }
    }
    size_t holders = 0;
    for (FleetState* st : all) {
      if (st->PolicyLookup("bad.example", clock.now_ms)) ++holders;
    }
    if (live_sets) {
      EXPECT_EQ(holders, 0u);
      for (FleetState* st : all) {
        EXPECT_EQ(Fingerprint(*st, clock.now_ms),
                  Fingerprint(*a, clock.now_ms));
      }
      EXPECT_GE(x->Stats().policies_repaired + z->Stats().policies_repaired,
                2u);
    } else {
      // The divergence the live sets repair: some hold it, some do not.
      EXPECT_GT(holders, 0u);
      EXPECT_LT(holders, all.size());
    }
  }
}

// Puts and deletes of one subject on random nodes, the clock moving
// between them and no gossip until the end: the last one wins everywhere.
TEST(CrdtPropertyTest, TombstonesWinOverOlderPutsAndLoseToNewer) {
  uint64_t seed = Seed() + 3;
  SCOPED_TRACE(::testing::Message() << "seed=" << seed);
  std::mt19937_64 rng(seed);
  for (int iter = 0; iter < 50; ++iter) {
    FakeClock clock;
    std::vector<std::unique_ptr<FleetState>> nodes;
    for (int i = 0; i < 4; ++i) {
      nodes.push_back(Mem("node" + std::to_string(i), clock));
    }
    bool last_deleted = false;
    std::string last_reason;
    for (int op = 0; op < 10; ++op) {
      clock.now_ms += 1 + static_cast<int64_t>(rng() % 100);
      FleetState& w = *nodes[rng() % 4];
      last_deleted = rng() % 2 == 0;
      if (last_deleted) {
        ASSERT_TRUE(w.PolicyDelete("bad.example").ok());
      } else {
        PolicySpec spec;
        spec.subject = "bad.example";
        last_reason = "op" + std::to_string(op);
        spec.reason = last_reason;
        ASSERT_TRUE(w.PolicyPut(spec).ok());
      }
    }
    for (int pass = 0; pass < 2; ++pass) {
      for (int i = 1; i < 4; ++i) testing::SyncPair(*nodes[0], *nodes[i]);
    }
    for (const auto& node : nodes) {
      auto w = node->PolicyLookup("bad.example", clock.now_ms);
      ASSERT_EQ(w.has_value(), !last_deleted) << "iter " << iter;
      if (w) {
        EXPECT_EQ(w->reason(), last_reason);
      }
    }
  }
}

// c misses a delete, then stays away past the tombstone horizon: a and b
// drop the tombstone and the put it overrode. When c returns, the resync
// makes it drop the put too, even under a cap far below the overlay's
// size (the resync resumes from the progress c reports).
TEST(CrdtPropertyTest, BehindTheHorizonResyncsFully) {
  constexpr int kVictims = 40;
  for (size_t cap : {size_t{1} << 20, size_t{400}, size_t{120}}) {
    SCOPED_TRACE(::testing::Message() << "cap=" << cap);
    FakeClock clock;
    auto a = Mem("a", clock);
    auto b = Mem("b", clock);
    auto c = Mem("c", clock);
    for (int i = 0; i < kVictims; ++i) {
      PolicySpec spec;
      spec.subject = "victim" + std::to_string(i) + ".example";
      ASSERT_TRUE(a->PolicyPut(spec).ok());
    }
    testing::SyncPair(*a, *c);
    testing::SyncPair(*a, *b);
    clock.now_ms += 1000;
    ASSERT_TRUE(b->PolicyDelete("victim0.example").ok());
    testing::SyncPair(*a, *b);
    EXPECT_FALSE(a->PolicyLookup("victim0.example", clock.now_ms));
    EXPECT_TRUE(c->PolicyLookup("victim0.example", clock.now_ms));
    // A day and more later.
    clock.now_ms += 25LL * 3600 * 1000;
    ASSERT_TRUE(a->Expire().ok());
    ASSERT_TRUE(b->Expire().ok());
    ASSERT_TRUE(c->Expire().ok());
    EXPECT_EQ(a->Stats().policies, kVictims - 1u);
    // c is behind b's horizon: a resync, until it is done.
    DeltaBatch first = a->DeltaFor(c->GetDigest(), cap);
    EXPECT_FALSE(first.full_resync_origins.empty());
    int rounds = 0;
    while (rounds < 500 && testing::Exchange(*c, *a, cap)) ++rounds;
    EXPECT_LT(rounds, 500);
    EXPECT_FALSE(c->PolicyLookup("victim0.example", clock.now_ms));
    EXPECT_EQ(c->PolicyLive(clock.now_ms).size(), kVictims - 1u);
    EXPECT_EQ(Fingerprint(*a, clock.now_ms), Fingerprint(*c, clock.now_ms));
    EXPECT_GE(c->Stats().resyncs_applied, 1u);
    // Once caught up, no more resyncs.
    EXPECT_TRUE(a->DeltaFor(c->GetDigest(), cap).full_resync_origins.empty());
  }
}

}  // namespace
}  // namespace zm::cluster
