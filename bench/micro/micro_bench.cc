// Micro-benchmarks of the per-command work of a session: the SMTP command
// grammar (node/smtp/command.h), the envelope address parser
// (node/mail/address.h) and smtp-policy lookups (node/smtpserver/
// smtpserver_policy.h). Relation lookups, rate decisions and CRDT merges
// have their own benchmarks (router_bench, ratetrack_bench,
// cluster_state_bench); `ninja bench_micro` builds all four.
//
//   ninja -C build-rel micro_bench && build-rel/bench/micro_bench
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "fmt/format.h"
#include "node/common/node_dir.h"
#include "node/relations/relation_db.h"
#include "node/mail/address.h"
#include "node/smtp/command.h"
#include "node/smtpserver/smtpserver_policy.h"

namespace zm {
namespace {

// One transaction's command lines, as a client sends them.
const std::vector<std::string_view>& SessionLines() {
  static const std::vector<std::string_view> lines = {
      "EHLO client.example.net",
      "MAIL FROM:<alice.smith@example.org> SIZE=52311 BODY=8BITMIME",
      "RCPT TO:<bob@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.com",
      "RCPT TO:<carol@example.com>",
      "DATA",
      "QUIT"};
  return lines;
}

void BM_ParseCommand(benchmark::State& state) {
  const auto& lines = SessionLines();
  size_t i = 0;
  for (auto _ : state) {
    smtp::Command c = smtp::ParseCommand(lines[i++ % lines.size()]);
    benchmark::DoNotOptimize(c);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseCommand);

void BM_ParseMailFrom(benchmark::State& state) {
  const smtp::PathOptions options;
  for (auto _ : state) {
    smtp::PathResult p = smtp::ParseMailFrom(
        "FROM:<alice.smith@example.org> SIZE=52311 BODY=8BITMIME", options);
    benchmark::DoNotOptimize(p);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseMailFrom);

void BM_ParseRcptTo(benchmark::State& state) {
  const smtp::PathOptions options;
  for (auto _ : state) {
    smtp::PathResult p = smtp::ParseRcptTo(
        "TO:<bob@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.com",
        options);
    benchmark::DoNotOptimize(p);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseRcptTo);

void BM_ParseAddress(benchmark::State& state, std::string_view text) {
  for (auto _ : state) {
    auto a = mail::ParseAddress(text);
    benchmark::DoNotOptimize(a);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK_CAPTURE(BM_ParseAddress, plain, "<bob@example.com>");
BENCHMARK_CAPTURE(BM_ParseAddress, quoted, "<\"john q. doe\"@Example.COM.>");
BENCHMARK_CAPTURE(BM_ParseAddress, source_route,
                  "<@relay1.example,@relay2.example:Bob.Smith@Example.NET>");

// A policy like an ISP's: `state.range(0)` customer networks (/24s), as
// many domains with a rate limit, 1,000 senders refused, on top of the
// built-in defaults; parsed in memory (Policy::Parse).
std::string PolicySource(int n) {
  std::string src = "_full_rights relaycustnet + fulltrustnet +\n";
  for (int i = 0; i < n; ++i) {
    src += fmt::format("[10.{}.{}.0]/24 relaycustnet + ratelimitmsgs 100,500\n",
                       i >> 8 & 255, i & 255);
    src += fmt::format(".customer{}.example rejectsource - ratelimitmsgs 50\n", i);
  }
  for (int i = 0; i < 1000; ++i) {
    src += fmt::format("spammer{}@ rejectsource + message \"go away\"\n", i);
  }
  return src;
}

smtpserver::Policy MakePolicy(int n) {
  auto p = smtpserver::Policy::Parse("smtp-policy.src", PolicySource(n), {});
  if (!p.ok()) {
    fmt::print(stderr, "policy: {}\n", p.status().ToString());
    std::abort();
  }
  return *std::move(p);
}

// The same policy compiled by newdb into RocksDB (db/smtp-policy), as a
// running smtpserver uses it, in a scratch node directory.
// `all_lengths`: compiled without the list of prefix lengths in use, as
// newdb did before it kept one: ForIp then probes every length (/32../0),
// which is how every lookup went before (the "before" figure).
class CompiledPolicy {
 public:
  CompiledPolicy(int n, bool all_lengths) {
    char t[] = "/tmp/zm-bench-policy-XXXXXX";
    dir_ = ::mkdtemp(t);
    std::filesystem::create_directories(dir_ + "/db");
    std::filesystem::create_directories(dir_ + "/etc");
    std::ofstream(dir_ + "/etc/smtp-policy.src") << PolicySource(n);
    NodeDir node{dir_};
    absl::Status st;
    if (all_lengths) {
      auto parsed = smtpserver::Policy::Parse("smtp-policy.src",
                                              PolicySource(n), {});
      std::vector<std::pair<std::string, std::string>> entries;
      for (auto& e : parsed->CompiledEntries()) {
        if (e.first != " prefixes") entries.push_back(std::move(e));
      }
      st = relations::BuildAndSwap(node.db(), "smtp-policy", entries);
    } else {
      st = smtpserver::CompilePolicy(node, nullptr);
    }
    auto p = st.ok() ? smtpserver::Policy::Load(node)
                     : absl::StatusOr<smtpserver::Policy>(st);
    if (!p.ok()) {
      fmt::print(stderr, "policy: {}\n", p.status().ToString());
      std::abort();
    }
    policy = *std::move(p);
  }
  ~CompiledPolicy() { std::filesystem::remove_all(dir_); }
  smtpserver::Policy policy;

 private:
  std::string dir_;
};

std::vector<std::string> ClientIps() {
  std::vector<std::string> ips;
  for (int i = 0; i < 1024; ++i) {
    // Half inside a customer network, half outside every one.
    ips.push_back(i % 2 ? fmt::format("10.{}.{}.7", i >> 8 & 3, i & 255)
                        : fmt::format("198.51.{}.{}", i & 255, i >> 8));
  }
  return ips;
}

void BM_PolicyForIpCompiled(benchmark::State& state) {
  CompiledPolicy compiled(static_cast<int>(state.range(0)), state.range(1));
  const std::vector<std::string> ips = ClientIps();
  size_t i = 0;
  for (auto _ : state) {
    smtpserver::PolicyAttrs a = compiled.policy.ForIp(ips[i++ % ips.size()]);
    benchmark::DoNotOptimize(a);
  }
  state.SetItemsProcessed(state.iterations());
}
// Args: networks, 1 = every prefix length probed (the old lookup).
BENCHMARK(BM_PolicyForIpCompiled)->ArgsProduct({{100, 10000}, {0, 1}});

void BM_PolicyForIp(benchmark::State& state) {
  const smtpserver::Policy policy = MakePolicy(static_cast<int>(state.range(0)));
  std::vector<std::string> ips;
  for (int i = 0; i < 1024; ++i) {
    // Half inside a customer network, half outside every one.
    ips.push_back(i % 2 ? fmt::format("10.{}.{}.7", i >> 8 & 3, i & 255)
                        : fmt::format("198.51.{}.{}", i & 255, i >> 8));
  }
  size_t i = 0;
  for (auto _ : state) {
    smtpserver::PolicyAttrs a = policy.ForIp(ips[i++ % ips.size()]);
    benchmark::DoNotOptimize(a);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PolicyForIp)->Arg(100)->Arg(10000);

void BM_PolicyForAddress(benchmark::State& state) {
  const smtpserver::Policy policy = MakePolicy(static_cast<int>(state.range(0)));
  std::vector<std::string> addrs;
  for (int i = 0; i < 1024; ++i) {
    addrs.push_back(i % 2 ? fmt::format("user{}@mail.customer{}.example", i, i)
                          : fmt::format("someone{}@elsewhere{}.example", i, i));
  }
  size_t i = 0;
  for (auto _ : state) {
    smtpserver::PolicyAttrs a = policy.ForAddress(addrs[i++ % addrs.size()]);
    benchmark::DoNotOptimize(a);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PolicyForAddress)->Arg(100)->Arg(10000);

}  // namespace
}  // namespace zm

BENCHMARK_MAIN();
