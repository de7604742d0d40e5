// Seeds: the fixed list plus what DNS says now (A/AAAA records of a name,
// with the gossip port, or SRV records, e.g. a Kubernetes headless
// Service), looked up again every seed-refresh so an isolated node finds
// its fleet again.
#include <algorithm>

#include "cluster/agent/agent_internal.h"
#include "node/common/strings.h"

namespace zm::cluster::internal {
namespace {

std::string WithPort(const std::string& host, int port) {
  if (host.find(':') != std::string::npos) {
    return StrCat("[", host, "]:", port);
  }
  return StrCat(host, ":", port);
}

}  // namespace

std::vector<std::string> ResolveSeeds(const AgentOptions& options,
                                      Logger& log, LogLimiter& limiter) {
  std::vector<std::string> seeds = options.seeds;
  auto note = [&](const std::string& what, const absl::Status& s) {
    if (limiter.Allow(what)) {
      log.Warning("", StrCat("seed lookup ", what, ": ", Message(s)));
    }
  };
  if (options.resolve && !options.seed_dns.empty()) {
    for (const char* type : {"A", "AAAA"}) {
      auto addrs = options.resolve(type, options.seed_dns);
      if (!addrs.ok()) {
        // A name with only A (or only AAAA) records is normal.
        if (addrs.status().code() != absl::StatusCode::kNotFound) {
          note(StrCat(type, " ", options.seed_dns), addrs.status());
        }
        continue;
      }
      for (const auto& a : *addrs) {
        seeds.push_back(WithPort(a, options.seed_dns_port));
      }
    }
  }
  if (options.resolve && !options.seed_srv.empty()) {
    auto targets = options.resolve("SRV", options.seed_srv);
    if (!targets.ok()) {
      note(StrCat("SRV ", options.seed_srv), targets.status());
    } else {
      for (const auto& t : *targets) seeds.push_back(t);
    }
  }
  std::sort(seeds.begin(), seeds.end());
  seeds.erase(std::unique(seeds.begin(), seeds.end()), seeds.end());
  return seeds;
}

}  // namespace zm::cluster::internal
