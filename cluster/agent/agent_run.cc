// clusterd's start-up: cluster.conf -> AgentOptions, the agent, and the
// signal loop (SIGTERM leaves the fleet, then stops).
#include <grpcpp/grpcpp.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <string_view>

#include "cluster/agent/agent_internal.h"
#include "cluster/agent/clusterd.h"
#include "cluster/agent/clusterd_metrics.h"
#include "cluster/conf/cluster_tls.h"
#include "node/common/strings.h"
#include "node/dns/resolver.h"

namespace zm::cluster {
namespace {

constexpr int kMetricsEveryMs = 1000;

// The fleet's mutual TLS (cluster_tls.h): the files are watched, so a
// renewed certificate, key or CA is used without a restart; a caller's
// certificate must name the node it claims to be.
absl::StatusOr<PeerSecurity> Security(const ClusterConf& conf) {
  TlsFiles files = TlsFilesOf(conf);
  PeerSecurity sec;
  auto server = PeerServerCredentials(files);
  if (!server.ok()) return server.status();
  sec.server = *std::move(server);
  auto channel = PeerChannelCredentials(files, ServerNameCheck::kHostName);
  if (!channel.ok()) return channel.status();
  sec.channel = *std::move(channel);
  auto seed = PeerChannelCredentials(files, ServerNameCheck::kFleetOnly);
  if (!seed.ok()) return seed.status();
  sec.seed_channel = *std::move(seed);
  sec.target_name_is_node_id = true;
  sec.check = [](const grpc::ServerContext& ctx, const std::string& claimed) {
    return CheckPeerIs(ctx, claimed);
  };
  return sec;
}

}  // namespace

absl::StatusOr<AgentOptions> OptionsFromConf(const NodeDir& node,
                                             const ClusterConf& conf) {
  AgentOptions o;
  o.node_id = conf.node_id;
  if (o.node_id.empty()) {
    return absl::InvalidArgumentError(
        StrCat(node.etc_file("cluster.conf"), ": node-id is not set"));
  }
  o.version = "zmnode";
  if (conf.Enabled()) {
    o.listen = conf.gossip_listen.ToString();
    o.advertise = conf.advertise.ToString();
    for (const auto& s : conf.seeds) o.seeds.push_back(s.ToString());
    o.seed_dns = conf.seed_dns;
    o.seed_dns_port = conf.gossip_listen.port;
    o.seed_srv = conf.seed_srv;
    o.seed_refresh_ms = conf.seed_refresh_ms;
    auto sec = Security(conf);
    if (!sec.ok()) return sec.status();
    o.security = *std::move(sec);
  }
  o.gossip_interval_ms = conf.gossip_interval_ms;
  o.fanout = conf.fanout;
  o.max_message_bytes = static_cast<size_t>(conf.max_message_bytes);
  // One delta stays well inside one message.
  o.exchange_max_bytes = std::min<size_t>(o.exchange_max_bytes,
                                          o.max_message_bytes / 2);

  MembershipOptions& m = o.membership;
  m.probe_interval_ms = conf.probe_interval_ms;
  m.probe_timeout_ms = conf.probe_timeout_ms;
  m.indirect_checks = conf.indirect_probes;
  m.gossip_interval_ms = conf.gossip_interval_ms;
  m.gossip_fanout = conf.fanout;
  m.rejoin_interval_ms = conf.seed_refresh_ms;
  // cluster.conf's suspicion-min/-max are the timeouts themselves (with
  // many / no confirmations), scaled up only past ten members.
  m.suspicion_min_ms = conf.suspicion_min_ms;
  m.suspicion_max_ms = conf.suspicion_max_ms;
  m.full_sync_interval_ms = conf.full_sync_interval_ms;

  if (conf.rate_slots) o.state.rate_window_slots = *conf.rate_slots;
  if (conf.rate_slot_seconds) o.state.rate_slot_seconds = *conf.rate_slot_seconds;
  o.state.tombstone_horizon_ms = conf.policy_tombstone_horizon_ms;
  // For tests only (docs/reliability.md): ZM_TEST_CLOCK_OFFSET_MS moves
  // this agent's fleet-state clock (its HLC, policy expiry, rate slots)
  // by that many milliseconds, to play a node with a skewed clock.
  if (const char* off = std::getenv("ZM_TEST_CLOCK_OFFSET_MS");
      off != nullptr && *off != '\0') {
    int64_t ms = 0;
    if (!ParseNumber(std::string_view(off), &ms)) {
      return absl::InvalidArgumentError(
          StrCat("ZM_TEST_CLOCK_OFFSET_MS: not a number of ms: '", off, "'"));
    }
    o.state.clock = [ms] { return internal::UnixMs() + ms; };
  }
  o.state_dir = node.db() + "/cluster";
  o.local_socket =
      conf.local_socket.empty() ? node.run() + "/cluster.sock" : conf.local_socket;

  if (!o.seed_dns.empty() || !o.seed_srv.empty()) {
    auto ro = dns::OptionsForNode(node);
    if (!ro.ok()) return ro.status();
    auto r = dns::Resolver::Create(*ro);
    if (!r.ok()) return r.status();
    std::shared_ptr<dns::Resolver> resolver = *std::move(r);
    o.resolve = [resolver](const std::string& type, const std::string& name)
        -> absl::StatusOr<std::vector<std::string>> {
      if (type == "A") return resolver->LookupA(name);
      if (type == "AAAA") return resolver->LookupAaaa(name);
      auto srv = resolver->LookupSrv(name);
      if (!srv.ok()) return srv.status();
      std::vector<std::string> out;
      for (const auto& s : *srv) {
        // gRPC resolves names with the system resolver, not ours: dial
        // the target's addresses.
        auto addrs = resolver->LookupA(s.target);
        if (!addrs.ok()) continue;
        for (const auto& a : *addrs) out.push_back(StrCat(a, ":", s.port));
      }
      return out;
    };
  }
  std::string home = node.home;
  o.etrn = [home](const std::string& domain) {
    return internal::RunSchedulerEtrn(home, domain);
  };
  return o;
}

int RunClusterd(Daemon& daemon) {
  Logger& log = daemon.log();
  auto conf = LoadClusterConf(daemon.node());
  if (!conf.ok()) return Daemon::Fail("clusterd", conf.status());
  auto options = OptionsFromConf(daemon.node(), *conf);
  if (!options.ok()) return Daemon::Fail("clusterd", options.status());
  auto agent = Agent::Start(*std::move(options), log);
  if (!agent.ok()) return Daemon::Fail("clusterd", agent.status());
  if (auto s = daemon.Ready(); !s.ok()) {
    (*agent)->Stop(false);
    return Daemon::Fail("clusterd", s);
  }
  // The gossip counters go to run/metrics/clusterd.stats once a second.
  ClusterdMetrics metrics(daemon.node());
  for (;;) {
    metrics.Update((*agent)->Stats(), (*agent)->membership().Stats());
    struct pollfd pfd = {daemon.signal_fd(), POLLIN, 0};
    int n = ::poll(&pfd, 1, kMetricsEveryMs);
    if (n < 0 && errno != EINTR) break;
    if (n <= 0) continue;
    Daemon::Signal sig = daemon.TakeSignal();
    if (sig == Daemon::Signal::kStop) break;
    if (sig == Daemon::Signal::kReload) {
      (void)log.Reopen();
      log.Info("", "reload: the log was reopened");
    }
  }
  log.Info("", "stopping: leaving the fleet");
  (*agent)->Stop(/*graceful=*/true);
  agent->reset();
  log.Info("", "stopped");
  return 0;
}

}  // namespace zm::cluster
