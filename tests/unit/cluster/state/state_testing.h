// Helpers for the fleet state tests: a controlled clock and anti-entropy
// rounds between stores.
#ifndef ZM_TESTS_UNIT_CLUSTER_STATE_STATE_TESTING_H_
#define ZM_TESTS_UNIT_CLUSTER_STATE_STATE_TESTING_H_

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cluster/state/fleet_state.h"

namespace zm::cluster::testing {

// 2026-11-21 00:00:00 UTC, on a 450 s slot boundary.
inline constexpr int64_t kT0Ms = 1795219200000LL;

struct FakeClock {
  std::atomic<int64_t> now_ms{kT0Ms};
  FleetStateOptions Options() {
    FleetStateOptions o;
    o.clock = [this] { return now_ms.load(); };
    o.sync_local_writes = false;
    return o;
  }
};

inline std::unique_ptr<FleetState> Mem(const std::string& id, FakeClock& clock,
                                       uint64_t generation = 1) {
  auto st = FleetState::InMemory(id, generation, clock.Options());
  EXPECT_TRUE(st.ok()) << st.status();
  return std::move(*st);
}

inline v1::RateSlot Slot(std::string key, int64_t slot_start,
                         uint64_t messages) {
  v1::RateSlot s;
  s.set_key(std::move(key));
  s.set_slot_start(slot_start);
  s.set_messages(messages);
  return s;
}

// One push-pull exchange: `from` asks `to` with its digest and applies
// the reply, then pushes what `to` lacks. Returns whether anything moved.
inline bool Exchange(FleetState& from, FleetState& to, size_t cap) {
  DeltaBatch pull = to.DeltaFor(from.GetDigest(), cap);
  absl::StatusOr<Changes> a = from.Apply(pull.delta);
  EXPECT_TRUE(a.ok()) << a.status();
  DeltaBatch push = from.DeltaFor(to.GetDigest(), cap);
  absl::StatusOr<Changes> b = to.Apply(push.delta);
  EXPECT_TRUE(b.ok()) << b.status();
  return pull.delta.ByteSizeLong() > 0 || push.delta.ByteSizeLong() > 0;
}

// Exchanges until nothing moves (bounded).
inline void SyncPair(FleetState& a, FleetState& b, size_t cap = 1 << 20) {
  for (int i = 0; i < 10000 && Exchange(a, b, cap); ++i) {
  }
}

// The full replicated state, for equality checks: every record (what a
// peer with an empty digest would get), the live policy and the digest.
inline std::string Fingerprint(const FleetState& st, int64_t now_ms) {
  DeltaBatch all = st.DeltaFor(v1::Digest(), SIZE_MAX);
  std::vector<std::string> rows;
  for (const auto& r : all.delta.rates())
    rows.push_back("r" + r.ShortDebugString());
  for (const auto& r : all.delta.policies())
    rows.push_back("p" + r.ShortDebugString());
  for (const auto& r : all.delta.etrn_requests())
    rows.push_back("e" + r.ShortDebugString());
  for (const auto& r : all.delta.etrn_results())
    rows.push_back("x" + r.ShortDebugString());
  for (const auto& r : all.delta.node_statuses())
    rows.push_back("s" + r.ShortDebugString());
  for (const auto& r : st.PolicyLive(now_ms))
    rows.push_back("w" + r.ShortDebugString());
  v1::Digest digest = st.GetDigest();
  for (const auto& r : digest.origins())
    rows.push_back("d" + r.ShortDebugString());
  std::sort(rows.begin(), rows.end());
  std::string out;
  for (const std::string& row : rows) out += row + "\n";
  return out;
}

}  // namespace zm::cluster::testing

#endif  // ZM_TESTS_UNIT_CLUSTER_STATE_STATE_TESTING_H_
