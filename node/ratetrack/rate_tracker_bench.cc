// Add+Get per second of the rate-tracker (what the smtpserver does per
// message: a Get at MAIL, an Add at end of DATA), in memory and with the
// RocksDB flusher running. Built on demand:
//   ninja -C build ratetrack_bench && build/bin/ratetrack_bench
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <vector>

#include "node/ratetrack/rate_tracker.h"

namespace zm::ratetrack {
namespace {

constexpr int64_t kNow = 1'700'000'000;

std::vector<std::string> Keys(int n) {
  std::vector<std::string> keys;
  for (int i = 0; i < n; ++i) {
    keys.push_back(*KeyForIp("10." + std::to_string(i >> 16 & 255) + "." +
                             std::to_string(i >> 8 & 255) + "." +
                             std::to_string(i & 255)));
  }
  return keys;
}

// Shared across the threads of one run.
RateTracker* g_tracker = nullptr;
std::unique_ptr<RateTracker> g_owner;
std::string g_dir;

void AddGet(benchmark::State& state, bool persistent) {
  static const std::vector<std::string> keys = Keys(100000);
  if (state.thread_index() == 0) {
    if (persistent) {
      char tmpl[] = "/tmp/zm-ratetrack-bench-XXXXXX";
      g_dir = mkdtemp(tmpl);
      g_owner = std::move(*RateTracker::Open(NodeDir{g_dir}, "a", {}));
    } else {
      g_owner = RateTracker::InMemory("a", {});
    }
    g_tracker = g_owner.get();
  }
  size_t i = static_cast<size_t>(state.thread_index()) * 7919;
  uint64_t sink = 0;
  for (auto _ : state) {
    const std::string& key = keys[i++ % keys.size()];
    sink += g_tracker->Get(key, kNow).messages;
    g_tracker->Add(key, Counts{.messages = 1, .recipients = 2}, kNow);
  }
  benchmark::DoNotOptimize(sink);
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    g_owner.reset();
    if (!g_dir.empty()) std::filesystem::remove_all(g_dir);
    g_dir.clear();
  }
}

void BM_AddGetInMemory(benchmark::State& state) { AddGet(state, false); }
void BM_AddGetRocksDb(benchmark::State& state) { AddGet(state, true); }
BENCHMARK(BM_AddGetInMemory)->Threads(1)->Threads(2)->Threads(4);
BENCHMARK(BM_AddGetRocksDb)->Threads(1)->Threads(2)->Threads(4);

}  // namespace
}  // namespace zm::ratetrack

BENCHMARK_MAIN();
