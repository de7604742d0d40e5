// cluster_sim: convergence figures of the cluster layer from the in-process
// simulator (cluster/membership/sim.h): simulated time, lossy in-memory
// network, real Membership and (when built with it) real FleetState code.
// Prints markdown tables; asserts nothing. See bench/README.md.
//
//   build/bench/cluster_sim                       # everything, default sizes
//   build/bench/cluster_sim --only crash --sizes 16,64,100,256 --trials 5
//   build/bench/cluster_sim --only rate --trials 3        # 3, 9, 27 nodes
#include "bench/cluster-sim/cluster_sim.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "cluster/membership/sim.h"

namespace zm::cluster::sim {
namespace {

constexpr int64_t kSecond = 1000;
constexpr int64_t kMinute = 60 * kSecond;

std::string Ms(std::optional<int64_t> ms) {
  return ms ? fmt::format("{:.2f} s", static_cast<double>(*ms) / 1000.0)
            : std::string("never");
}

struct Summary {
  std::vector<int64_t> values;
  int failures = 0;
  void Add(std::optional<int64_t> v) {
    if (v) {
      values.push_back(*v);
    } else {
      ++failures;
    }
  }
  std::string Median() {
    if (values.empty()) return "never";
    std::sort(values.begin(), values.end());
    return Ms(values[values.size() / 2]);
  }
  std::string Max() {
    if (values.empty()) return "never";
    return Ms(*std::max_element(values.begin(), values.end()));
  }
};

void Form(Simulator& s) {
  if (!s.RunUntil([&] { return s.Converged(); }, 5 * kMinute)) {
    std::fprintf(stderr, "fleet of %zu did not form\n", s.size());
  }
}

void Join(const BenchArgs& a) {
  fmt::print("\n### Join: a new node in every member's view\n\n");
  fmt::print(
      "Fleet formed, then one node starts and joins through the seeds; time "
      "until every member has it alive ({} trials).\n\n",
      a.trials);
  fmt::print("| N | median | max | fleet formation from cold (median) |\n");
  fmt::print("| --- | --- | --- | --- |\n");
  for (size_t n : a.sizes) {
    Summary join, form;
    for (int t = 0; t < a.trials; ++t) {
      Simulator s(FleetOptions(a, n, a.seed + t));
      form.Add(s.RunUntil([&] { return s.Converged(); }, 5 * kMinute));
      const size_t added = s.AddNode();
      join.Add(s.RunUntil([&] { return s.AllSee(added, MemberState::kAlive); },
                          kMinute));
    }
    fmt::print("| {} | {} | {} | {} |\n", n, join.Median(), join.Max(),
               form.Median());
  }
}

// Cold start of the whole fleet through the seeds (the seeds of the crash
// trials: seed + 100 + t).
void Formation(const BenchArgs& a) {
  fmt::print("\n### Formation: a cold fleet, every member in every view\n\n");
  fmt::print(
      "All nodes start together and join through 3 seeds; time until every "
      "member sees every other alive, at most 5 simulated minutes ({} "
      "trials).\n\n",
      a.trials);
  fmt::print(
      "| N | formed | median | max | members learnt by full sync (all "
      "trials) |\n");
  fmt::print("| --- | --- | --- | --- | --- |\n");
  for (size_t n : a.sizes) {
    Summary form;
    uint64_t learnt = 0;
    for (int t = 0; t < a.trials; ++t) {
      const uint64_t seed = a.seed + 100 + t;
      Simulator s(FleetOptions(a, n, seed));
      const auto took =
          s.RunUntil([&] { return s.Converged(); }, 5 * kMinute);
      if (!took) std::fprintf(stderr, "seed %llu: not formed\n",
                              static_cast<unsigned long long>(seed));
      form.Add(took);
      for (size_t i = 0; i < s.size(); ++i) {
        learnt += s.node(i)->Stats().full_sync_learnt;
      }
    }
    fmt::print("| {} | {} of {} | {} | {} | {} |\n", n, form.values.size(),
               a.trials, form.Median(), form.Max(), learnt);
  }
}

void Crash(const BenchArgs& a) {
  fmt::print("\n### Crash detection: a killed node dead everywhere\n\n");
  fmt::print(
      "One node killed (no goodbye); time until the first member declares "
      "it dead and until every member has ({} trials, no loss).\n\n",
      a.trials);
  fmt::print(
      "| N | first dead (median) | all dead (median) | all dead (max) |\n");
  fmt::print("| --- | --- | --- | --- |\n");
  for (size_t n : a.sizes) {
    Summary first, all;
    for (int t = 0; t < a.trials; ++t) {
      Simulator s(FleetOptions(a, n, a.seed + 100 + t));
      Form(s);
      s.RunFor(5 * kSecond);
      const size_t victim = 1 + static_cast<size_t>(t) % (n - 1);
      s.Kill(victim);
      const int64_t start = s.now();
      std::optional<int64_t> first_dead;
      auto all_dead = s.RunUntil(
          [&] {
            if (!first_dead) {
              for (size_t v = 0; v < n; ++v) {
                if (s.up(v) && s.StateIn(v, victim) == MemberState::kDead) {
                  first_dead = s.now() - start;
                  break;
                }
              }
            }
            return s.AllSee(victim, MemberState::kDead);
          },
          2 * kMinute);
      first.Add(first_dead);
      all.Add(all_dead);
    }
    fmt::print("| {} | {} | {} | {} |\n", n, first.Median(), all.Median(),
               all.Max());
  }
}

void FalsePositives(const BenchArgs& a) {
  fmt::print("\n### False positives over {} simulated minutes\n\n", a.minutes);
  fmt::print(
      "Suspicions and deaths declared about nodes that were running. "
      "\"starved\": one node runs every event (arrival, timer, tick) up to "
      "{} ms late.\n\n",
      a.starve_ms);
  fmt::print(
      "| N | condition | false suspect events | false dead events | "
      "refutations | fleet converged at end |\n");
  fmt::print("| --- | --- | --- | --- | --- | --- |\n");
  for (size_t n : a.sizes) {
    for (int c = 0; c < 2; ++c) {
      Simulator s(FleetOptions(a, n, a.seed + 200, c == 0 ? 0.05 : 0.0));
      Form(s);
      const Simulator::Counters before = s.counters();
      if (c == 1) s.SetStarved(n / 2, a.starve_ms);
      s.RunFor(a.minutes * kMinute);
      const Simulator::Counters& after = s.counters();
      fmt::print("| {} | {} | {} | {} | {} | {} |\n", n,
                 c == 0 ? "5 % loss" : "one starved node",
                 after.false_suspect - before.false_suspect,
                 after.false_dead - before.false_dead,
                 after.refutations - before.refutations,
                 s.Converged() ? "yes" : "no");
    }
  }
}

void MembershipBytes(const BenchArgs& a) {
  fmt::print("\n### Membership traffic, idle fleet\n\n");
  fmt::print(
      "Bytes sent per node per second by SWIM alone (pings, acks, ping-reqs, "
      "gossip), over {} simulated minutes after formation: protobuf payload, "
      "and with {} bytes per message for gRPC/HTTP2/TLS framing "
      "(an estimate).\n\n",
      a.minutes, a.overhead);
  fmt::print(
      "| N | payload B/s/node | with framing B/s/node | kbit/s/node |\n");
  fmt::print("| --- | --- | --- | --- |\n");
  for (size_t n : a.sizes) {
    double payload = 0;
    double framed = 0;
    for (int pass = 0; pass < 2; ++pass) {
      Simulator::Options o = FleetOptions(a, n, a.seed + 300);
      o.count_bytes = true;
      o.message_overhead = pass == 0 ? 0 : a.overhead;
      Simulator s(o);
      Form(s);
      s.RunFor(10 * kSecond);
      s.ResetBytes();
      s.RunFor(a.minutes * kMinute);
      const double per = static_cast<double>(s.total_bytes()) /
                         static_cast<double>(n) /
                         static_cast<double>(a.minutes * 60);
      (pass == 0 ? payload : framed) = per;
    }
    fmt::print("| {} | {:.0f} | {:.0f} | {:.2f} |\n", n, payload, framed,
               framed * 8 / 1000);
  }
}

#ifdef ZM_SIM_NO_STATE
}  // namespace
void StateBench(const BenchArgs&) {
  fmt::print("\n(fleet state figures: built without cluster/state)\n");
}
void RateBench(const BenchArgs&) {
  fmt::print("\n(rate accuracy: built without cluster/state)\n");
}
void StatePart(const BenchArgs&, const std::string&) {
  fmt::print("\n(fleet state figures: built without cluster/state)\n");
}
namespace {
#endif

std::vector<size_t> ParseSizes(const char* s) {
  std::vector<size_t> out;
  std::string cur;
  for (const char* p = s;; ++p) {
    if (*p == ',' || *p == '\0') {
      if (!cur.empty()) out.push_back(std::stoul(cur));
      cur.clear();
      if (*p == '\0') break;
    } else {
      cur += *p;
    }
  }
  return out;
}

int Usage() {
  std::fprintf(stderr,
               "usage: cluster_sim [--only join|formation|crash|false|bytes|"
               "state|rate|"
               "propagation|gossip|partition] "
               "[--sizes N,N,...] [--trials T] [--minutes M] [--seed S] "
               "[--starve MS] [--overhead BYTES] [--suspicion-mult M] "
               "[--probe-interval MS] [--probe-timeout MS] "
               "[--suspicion-min MS] [--suspicion-max MS] [--full-sync MS] "
               "[--load KEYS/S]\n");
  return 64;
}

}  // namespace

Simulator::Options FleetOptions(const BenchArgs& a, size_t n, uint64_t seed,
                                double loss) {
  Simulator::Options o;
  o.nodes = n;
  o.seed = seed;
  o.net.loss = loss;
  if (a.suspicion_mult > 0) o.membership.suspicion_mult = a.suspicion_mult;
  if (a.probe_interval_ms > 0) {
    o.membership.probe_interval_ms = a.probe_interval_ms;
  }
  if (a.suspicion_min_ms > 0) {
    o.membership.suspicion_min_ms = a.suspicion_min_ms;
  }
  if (a.suspicion_max_ms > 0) {
    o.membership.suspicion_max_ms = a.suspicion_max_ms;
  }
  if (a.probe_timeout_ms > 0) {
    o.membership.probe_timeout_ms = a.probe_timeout_ms;
  }
  if (a.full_sync_ms >= 0) o.membership.full_sync_interval_ms = a.full_sync_ms;
  return o;
}

}  // namespace zm::cluster::sim

int main(int argc, char** argv) {
  using namespace zm::cluster::sim;
  BenchArgs a;
  std::string only;
  bool sizes_given = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) return Usage();
    const char* v = argv[++i];
    if (arg == "--only") {
      only = v;
    } else if (arg == "--sizes") {
      a.sizes = ParseSizes(v);
      sizes_given = true;
    } else if (arg == "--trials") {
      a.trials = std::max(1, std::atoi(v));
    } else if (arg == "--minutes") {
      a.minutes = std::max(1, std::atoi(v));
    } else if (arg == "--seed") {
      a.seed = std::strtoull(v, nullptr, 10);
    } else if (arg == "--starve") {
      a.starve_ms = std::atoll(v);
    } else if (arg == "--suspicion-mult") {
      a.suspicion_mult = std::atoi(v);
    } else if (arg == "--probe-interval") {
      a.probe_interval_ms = std::atoll(v);
    } else if (arg == "--suspicion-min") {
      a.suspicion_min_ms = std::atoll(v);
    } else if (arg == "--suspicion-max") {
      a.suspicion_max_ms = std::atoll(v);
    } else if (arg == "--probe-timeout") {
      a.probe_timeout_ms = std::atoll(v);
    } else if (arg == "--full-sync") {
      a.full_sync_ms = std::atoll(v);
    } else if (arg == "--load") {
      a.load = std::atoi(v);
    } else if (arg == "--overhead") {
      a.overhead = std::strtoull(v, nullptr, 10);
    } else {
      return Usage();
    }
  }
  auto run = [&](const char* name, std::vector<size_t> defaults,
                 void (*fn)(const BenchArgs&)) {
    if (!only.empty() && only != name) return;
    BenchArgs b = a;
    if (!sizes_given) b.sizes = std::move(defaults);
    fn(b);
    std::fflush(stdout);
  };
  run("join", {8, 16, 32, 64, 256}, Join);
  run("formation", {64}, Formation);
  run("crash", {16, 64, 100, 256}, Crash);
  run("false", {16, 32, 100}, FalsePositives);
  run("bytes", {10, 16, 64, 256}, MembershipBytes);
  run("state", {16, 32, 64, 256}, StateBench);
  run("rate", {3, 9, 27}, RateBench);
  // The parts of "state" alone.
  for (const char* part : {"propagation", "gossip", "partition"}) {
    if (only != part) continue;
    BenchArgs b = a;
    if (!sizes_given) b.sizes = {16, 32};
    StatePart(b, part);
  }
  return 0;
}
