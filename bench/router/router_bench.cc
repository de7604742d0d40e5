// Router benchmarks (Google Benchmark): relation lookups per second for each
// relation type, with one million aliases (through the hash index, and the
// same aliases through RocksDB for comparison), and messages routed per second
// (the daemon's batch protocol, two syncfs per batch of 64) with 1 and 10
// recipients. Build: ninja router_bench (tests/unit/router/CMakeLists.txt);
// run: build/bench/router_bench [--benchmark_filter=...]. A node with the
// relations is built under $TMPDIR first (newdb of 1M aliases takes a few
// seconds). See bench/README.md.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <random>

#include "node/common/log.h"
#include "node/common/strings.h"
#include "node/relations/newdb.h"
#include "node/relations/relation_db.h"
#include "node/router/router.h"
#include "node/router/routing.h"
#include "node/spool/spool.h"

namespace zm::bench {
namespace {

constexpr int kAliases = 1000000;
constexpr int kRoutes = 100000;
constexpr int kUsers = 100000;
constexpr int kLocalNames = 10000;

// One node with big relations, shared by every benchmark.
struct Context {
  NodeDir node;
  std::unique_ptr<relations::RelationDb> aliases, routes, thishost, userdb;
  // The same aliases read through RocksDB instead of the hash index.
  std::unique_ptr<relations::RelationDb> aliases_rocksdb;
  std::unique_ptr<router::Routing> routing;
  std::unique_ptr<spool::Spool> spool;
  std::unique_ptr<Logger> log;

  bool Build() {
    char tmpl[] = "/tmp/zm-router-bench-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return false;
    node.home = tmpl;
    for (auto d : {"etc", "db", "spool", "log", "run", "mail"}) {
      std::filesystem::create_directories(node.home + "/" + d);
    }
    std::ofstream(node.etc_file("mail.conf")) << "hostname=bench.example\n";
    std::filesystem::copy_file(
        std::string(ZM_DEFAULTS_DIR) + "/dbases.conf",
        node.etc_file("dbases.conf"));
    {
      std::ofstream a(node.etc_file("aliases"));
      for (int i = 0; i < kAliases; ++i) {
        a << "alias" << i << ": user" << i << "@remote" << (i % 1000)
          << ".example\n";
      }
      std::ofstream(node.etc_file("fqdnaliases")) << "";
      std::ofstream r(node.etc_file("routes"));
      for (int i = 0; i < kRoutes; ++i) {
        r << "domain" << i << ".example smtp!relay" << (i % 10)
          << ".example\n";
      }
      r << ".example smtp!smarthost.example\n";
      std::ofstream l(node.etc_file("localnames"));
      for (int i = 0; i < kLocalNames; ++i) l << "local" << i << ".bench\n";
      std::ofstream u(node.etc_file("userdb"));
      for (int i = 0; i < kUsers; ++i) u << "vuser" << i << "\n";
    }
    std::string report;
    auto s = relations::NewDb(node, "", &report);
    if (!s.ok()) {
      fmt::print(stderr, "newdb: {}\n", Message(s));
      return false;
    }
    auto open = [&](const char* name) {
      auto db = relations::RelationDb::Open(node.db(), name);
      return db.ok() ? std::move(*db) : nullptr;
    };
    aliases = open("aliases");
    routes = open("routesdb");
    thishost = open("thishost");
    userdb = open("userdb");
    auto rdb = relations::RelationDb::Open(
        node.db(), "aliases", relations::RelationDb::ReadPath::kRocksDb);
    if (rdb.ok()) aliases_rocksdb = std::move(*rdb);
    auto r = router::Routing::Open(node);
    if (!r.ok()) {
      fmt::print(stderr, "routing: {}\n", Message(r.status()));
      return false;
    }
    routing = std::move(*r);
    spool = std::make_unique<spool::Spool>(node.spool(), "b1");
    log = std::make_unique<Logger>("router", node.maillog(), false);
    return spool->CreateLayout().ok() && aliases && routes && thishost &&
           userdb && aliases_rocksdb;
  }

  ~Context() {
    routing.reset();
    aliases.reset();
    aliases_rocksdb.reset();
    routes.reset();
    thishost.reset();
    userdb.reset();
    std::error_code ec;
    if (!node.home.empty()) std::filesystem::remove_all(node.home, ec);
  }
};

// Keys to look up: `n` random ones from prefix0..prefix<range-1>, built
// before timing.
std::vector<std::string> Keys(std::string_view prefix, int range,
                              std::string_view suffix, int n, int seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> pick(0, range - 1);
  std::vector<std::string> keys;
  for (int i = 0; i < n; ++i) keys.push_back(StrCat(prefix, pick(rng), suffix));
  return keys;
}

void Lookups(benchmark::State& state, const relations::RelationDb* db,
             std::vector<std::string> keys, bool expect_hit) {
  size_t i = static_cast<size_t>(state.thread_index()) * 7919;
  int64_t hits = 0;
  for (auto _ : state) {
    auto v = db->Lookup(keys[i++ % keys.size()]);
    hits += v.has_value();
    benchmark::DoNotOptimize(v);
  }
  state.SetItemsProcessed(state.iterations());
  if (hits != (expect_hit ? state.iterations() : 0)) {
    state.SkipWithError("unexpected lookup result");
  }
}

void Routes(benchmark::State& state, router::Routing* routing,
            std::vector<std::string> addresses, std::string_view channel) {
  size_t i = static_cast<size_t>(state.thread_index()) * 7919;
  for (auto _ : state) {
    auto r = routing->RouteAddress(addresses[i++ % addresses.size()]);
    if (r.empty() || r[0].channel != channel) {
      state.SkipWithError(
          StrCat("routed to ", r.empty() ? "nothing" : r[0].channel).c_str());
      break;
    }
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}

// Messages routed through RouteBatch (parse, route, control file, two
// syncfs per batch, renames), batches of 64 as the daemon takes them.
void Batches(benchmark::State& state, Context* c, int rcpts) {
  constexpr int kBatch = 64;
  int serial = 0;
  for (auto _ : state) {
    state.PauseTiming();
    std::vector<std::string> names;
    for (int m = 0; m < kBatch; ++m) {
      mail::Envelope env;
      env.sender = "sender@bench.example";
      for (int r = 0; r < rcpts; ++r) {
        env.recipients.push_back(
            {StrCat("alias", (serial * 31 + r * 7919) % kAliases), "", ""});
      }
      ++serial;
      auto sub = c->spool->Begin(env);
      if (!sub.ok() || !(*sub)->Append("Subject: bench\n\nbody\n").ok() ||
          !(*sub)->Commit().ok()) {
        state.SkipWithError("cannot submit");
        return;
      }
      names.push_back((*sub)->queue_id());
    }
    state.ResumeTiming();
    std::vector<std::string> retry;
    auto s = router::RouteBatch(*c->spool, *c->routing, *c->log, names, &retry);
    state.PauseTiming();
    if (!s.ok() || !retry.empty()) {
      state.SkipWithError("RouteBatch failed");
      return;
    }
    for (const std::string& n : names) {
      ::unlink(c->spool->Path(spool::kQueue, n).c_str());
      ::unlink(c->spool->Path(spool::kTransport, n).c_str());
    }
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  state.counters["recipients/s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * kBatch * rcpts),
      benchmark::Counter::kIsRate);
}

}  // namespace
}  // namespace zm::bench

int main(int argc, char** argv) {
  using namespace zm::bench;
  benchmark::Initialize(&argc, argv);
  Context c;
  if (!c.Build()) return 1;
  const int n = 1 << 16;
  auto reg = [](const char* name, auto fn) {
    return benchmark::RegisterBenchmark(name, fn)->ThreadRange(1, 2)
        ->UseRealTime();
  };
  reg("lookup/aliases_1M/hit",
      [&](benchmark::State& s) {
        Lookups(s, c.aliases.get(), Keys("alias", kAliases, "", n, 1), true);
      });
  reg("lookup/aliases_1M/miss",
      [&](benchmark::State& s) {
        Lookups(s, c.aliases.get(), Keys("nosuch", kAliases, "", n, 2), false);
      });
  reg("lookup/aliases_1M_rocksdb/hit",
      [&](benchmark::State& s) {
        Lookups(s, c.aliases_rocksdb.get(), Keys("alias", kAliases, "", n, 1),
                true);
      });
  reg("lookup/aliases_1M_rocksdb/miss",
      [&](benchmark::State& s) {
        Lookups(s, c.aliases_rocksdb.get(), Keys("nosuch", kAliases, "", n, 2),
                false);
      });
  reg("lookup/routesdb_100k/hit",
      [&](benchmark::State& s) {
        Lookups(s, c.routes.get(), Keys("domain", kRoutes, ".example", n, 3),
                true);
      });
  reg("lookup/thishost_10k/hit",
      [&](benchmark::State& s) {
        Lookups(s, c.thishost.get(),
                Keys("local", kLocalNames, ".bench", n, 4), true);
      });
  reg("lookup/userdb_100k/hit",
      [&](benchmark::State& s) {
        Lookups(s, c.userdb.get(), Keys("vuser", kUsers, "", n, 5), true);
      });
  reg("route/alias_to_remote_via_suffix",
      [&](benchmark::State& s) {
        Routes(s, c.routing.get(), Keys("alias", kAliases, "", n, 6), "smtp");
      });
  reg("route/remote_routesdb",
      [&](benchmark::State& s) {
        Routes(s, c.routing.get(),
               Keys("x@domain", kRoutes, ".example", n, 7), "smtp");
      });
  reg("route/userdb_user",
      [&](benchmark::State& s) {
        Routes(s, c.routing.get(), Keys("vuser", kUsers, "", n, 8), "local");
      });
  benchmark::RegisterBenchmark("batch/1_recipient",
                               [&](benchmark::State& s) { Batches(s, &c, 1); })
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("batch/10_recipients",
                               [&](benchmark::State& s) { Batches(s, &c, 10); })
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
