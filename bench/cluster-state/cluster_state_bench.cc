// Fleet state under gossip load: 10 nodes, each changing 1,000 rate keys a
// second, gossip every 200 ms (200 changed slots per node per round).
// Measures, per round, DeltaFor of all 10 origins' changes for a peer one
// round behind, and Apply of that delta, plus its size (the bandwidth a
// node needs to receive every change once).
//
//   ninja -C build cluster_state_bench && build/bin/cluster_state_bench
#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cluster/state/fleet_state.h"

namespace zm::cluster {
namespace {

constexpr int kNodes = 10;
constexpr int kKeysPerRound = 200;  // 1,000 keys/s at a 200 ms interval
constexpr int kKeyPool = 20000;
constexpr int64_t kT0Ms = 1795219200000LL;

struct Fleet {
  std::vector<std::unique_ptr<FleetState>> origins;
  std::unique_ptr<FleetState> hub;       // holds everything: serves deltas
  std::unique_ptr<FleetState> receiver;  // one round behind
  std::mt19937_64 rng{42};
  int64_t now_ms = kT0Ms;

  Fleet() {
    FleetStateOptions opt;
    opt.clock = [this] { return now_ms; };
    opt.sync_local_writes = false;
    for (int i = 0; i < kNodes; ++i) {
      origins.push_back(
          *FleetState::InMemory("node-" + std::to_string(i), 1, opt));
    }
    hub = *FleetState::InMemory("hub", 1, opt);
    receiver = *FleetState::InMemory("receiver", 1, opt);
  }

  // Every node changes kKeysPerRound keys; the hub learns all of it.
  void Round() {
    now_ms += 200;
    int64_t slot = now_ms / 1000 / 450 * 450;
    for (auto& o : origins) {
      std::vector<v1::RateSlot> slots;
      for (int k = 0; k < kKeysPerRound; ++k) {
        v1::RateSlot s;
        s.set_key("ip4:10." + std::to_string(rng() % kKeyPool / 256) + "." +
                  std::to_string(rng() % 256) + ".1");
        s.set_slot_start(slot);
        s.set_messages(now_ms - kT0Ms);  // always grows
        s.set_recipients(now_ms - kT0Ms);
        slots.push_back(std::move(s));
      }
      (void)o->PutLocalRates(slots);
      (void)hub->Apply(o->DeltaFor(hub->GetDigest(), SIZE_MAX).delta);
    }
  }
};

void BM_DeltaForOneRound(benchmark::State& state) {
  Fleet f;
  for (int i = 0; i < 50; ++i) f.Round();  // a populated store
  (void)f.receiver->Apply(f.hub->DeltaFor(v1::Digest(), SIZE_MAX).delta);
  size_t bytes = 0, records = 0;
  for (auto _ : state) {
    state.PauseTiming();
    f.Round();
    v1::Digest behind = f.receiver->GetDigest();
    state.ResumeTiming();
    DeltaBatch d = f.hub->DeltaFor(behind, 4 << 20);
    state.PauseTiming();
    bytes += d.delta.ByteSizeLong();
    records += d.delta.rates_size();
    (void)f.receiver->Apply(d.delta);
    state.ResumeTiming();
  }
  state.counters["records/round"] =
      benchmark::Counter(static_cast<double>(records) / state.iterations());
  state.counters["bytes/record"] =
      benchmark::Counter(records ? static_cast<double>(bytes) / records : 0);
  // 5 rounds a second: what one node receives to see every change once.
  state.counters["kbit/s at 5 rounds/s"] = benchmark::Counter(
      static_cast<double>(bytes) * 8 * 5 / 1000 / state.iterations());
  state.counters["records/s"] = benchmark::Counter(static_cast<double>(records),
                                                   benchmark::Counter::kIsRate);
}
BENCHMARK(BM_DeltaForOneRound)->Unit(benchmark::kMicrosecond);

void BM_ApplyOneRound(benchmark::State& state) {
  Fleet f;
  for (int i = 0; i < 50; ++i) f.Round();
  (void)f.receiver->Apply(f.hub->DeltaFor(v1::Digest(), SIZE_MAX).delta);
  size_t records = 0;
  for (auto _ : state) {
    state.PauseTiming();
    f.Round();
    DeltaBatch d = f.hub->DeltaFor(f.receiver->GetDigest(), 4 << 20);
    records += d.delta.rates_size();
    state.ResumeTiming();
    auto got = f.receiver->Apply(d.delta);
    benchmark::DoNotOptimize(got);
  }
  state.counters["records/s"] = benchmark::Counter(static_cast<double>(records),
                                                   benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ApplyOneRound)->Unit(benchmark::kMicrosecond);

// The idle case: digests equal, DeltaFor finds nothing.
void BM_DeltaForIdle(benchmark::State& state) {
  Fleet f;
  for (int i = 0; i < 50; ++i) f.Round();
  (void)f.receiver->Apply(f.hub->DeltaFor(v1::Digest(), SIZE_MAX).delta);
  v1::Digest same = f.receiver->GetDigest();
  for (auto _ : state) {
    DeltaBatch d = f.hub->DeltaFor(same, 4 << 20);
    benchmark::DoNotOptimize(d);
  }
  state.counters["digest bytes"] =
      benchmark::Counter(static_cast<double>(same.ByteSizeLong()));
}
BENCHMARK(BM_DeltaForIdle)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace zm::cluster

BENCHMARK_MAIN();
