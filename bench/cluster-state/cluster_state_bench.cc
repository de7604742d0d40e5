// Fleet state under gossip load: 10 nodes, each changing 1,000 rate keys a
// second, gossip every 200 ms (200 changed slots per node per round).
// Measures, per round, DeltaFor of all 10 origins' changes for a peer one
// round behind, and Apply of that delta, plus its size (the bandwidth a
// node needs to receive every change once).
//
// Also: what gzip (gRPC's message compression) makes of such a delta, and
// TopSources' ranking at 10^4-10^5 keys: summing in the store (TopRates)
// against the copy of every slot it replaced.
//
//   ninja -C build cluster_state_bench && build/bin/cluster_state_bench
#include <benchmark/benchmark.h>
#include <zlib.h>

#include <algorithm>
#include <map>
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

size_t Gzipped(const std::string& bytes) {
  uLongf out_len = compressBound(bytes.size());
  std::string out(out_len, '\0');
  if (compress2(reinterpret_cast<Bytef*>(out.data()), &out_len,
                reinterpret_cast<const Bytef*>(bytes.data()), bytes.size(),
                Z_DEFAULT_COMPRESSION) != Z_OK) {
    return bytes.size();
  }
  return out_len;
}

void BM_DeltaForOneRound(benchmark::State& state) {
  Fleet f;
  for (int i = 0; i < 50; ++i) f.Round();  // a populated store
  (void)f.receiver->Apply(f.hub->DeltaFor(v1::Digest(), SIZE_MAX).delta);
  size_t bytes = 0, records = 0, gz = 0;
  for (auto _ : state) {
    state.PauseTiming();
    f.Round();
    v1::Digest behind = f.receiver->GetDigest();
    state.ResumeTiming();
    DeltaBatch d = f.hub->DeltaFor(behind, 4 << 20);
    state.PauseTiming();
    bytes += d.delta.ByteSizeLong();
    gz += Gzipped(d.delta.SerializeAsString());
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
  state.counters["gzip bytes/record"] =
      benchmark::Counter(records ? static_cast<double>(gz) / records : 0);
  state.counters["gzip kbit/s at 5 rounds/s"] = benchmark::Counter(
      static_cast<double>(gz) * 8 * 5 / 1000 / state.iterations());
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

// A store holding state.range(0) source keys counted by 2 nodes in the
// current slot (the agent's view of a busy fleet).
std::unique_ptr<FleetState> ManyKeys(int64_t keys, int64_t* now_ms) {
  FleetStateOptions opt;
  opt.clock = [now_ms] { return *now_ms; };
  opt.sync_local_writes = false;
  auto agent = *FleetState::InMemory("agent", 1, opt);
  int64_t slot = *now_ms / 1000 / 450 * 450;
  for (int node = 0; node < 2; ++node) {
    auto origin = *FleetState::InMemory("node-" + std::to_string(node), 1, opt);
    for (int64_t first = 0; first < keys; first += 10000) {
      std::vector<v1::RateSlot> slots;
      for (int64_t k = first; k < std::min(keys, first + 10000); ++k) {
        v1::RateSlot s;
        s.set_key("ip4:10." + std::to_string(k / 65536) + "." +
                  std::to_string(k / 256 % 256) + "." +
                  std::to_string(k % 256));
        s.set_slot_start(slot);
        s.set_messages(1 + static_cast<uint64_t>(k * 7919 % 1000));
        slots.push_back(std::move(s));
      }
      (void)origin->PutLocalRates(slots);
    }
    (void)agent->Apply(origin->DeltaFor(v1::Digest(), SIZE_MAX).delta);
  }
  return agent;
}

// What TopSources did before TopRates: copy every slot in the window, sum
// per key with a per-node map, rank all keys.
void BM_TopSourcesByCopy(benchmark::State& state) {
  int64_t now_ms = kT0Ms;
  auto agent = ManyKeys(state.range(0), &now_ms);
  struct Sum {
    uint64_t messages = 0, recipients = 0, auth_failures = 0, excesses = 0;
    std::map<std::string, uint64_t> nodes;
  };
  for (auto _ : state) {
    std::map<std::string, Sum> sums;
    for (const v1::RateSlot& s : agent->RatesInWindow(0)) {
      Sum& sum = sums[s.key()];
      sum.messages += s.messages();
      sum.recipients += s.recipients();
      sum.auth_failures += s.auth_failures();
      sum.excesses += s.excesses();
      sum.nodes[s.node_id()] += s.messages();
    }
    std::vector<const std::pair<const std::string, Sum>*> order;
    for (const auto& e : sums) order.push_back(&e);
    std::stable_sort(order.begin(), order.end(), [](auto* a, auto* b) {
      return a->second.messages > b->second.messages;
    });
    benchmark::DoNotOptimize(order.data());
  }
}
BENCHMARK(BM_TopSourcesByCopy)
    ->Arg(10000)
    ->Arg(100000)
    ->Unit(benchmark::kMillisecond);

// TopSources now: TopRates for the top 20, slots of those 20 keys only.
void BM_TopRates(benchmark::State& state) {
  int64_t now_ms = kT0Ms;
  auto agent = ManyKeys(state.range(0), &now_ms);
  for (auto _ : state) {
    std::vector<RateTotal> top = agent->TopRates(0, 20, "messages", nullptr);
    size_t slots = 0;
    for (const RateTotal& t : top)
      slots += agent->RatesInWindow(0, t.key).size();
    benchmark::DoNotOptimize(slots);
  }
}
BENCHMARK(BM_TopRates)->Arg(10000)->Arg(100000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace zm::cluster

BENCHMARK_MAIN();
