// clusterd's start-up: cluster.conf -> AgentOptions, the agent, and the
// signal loop (SIGTERM leaves the fleet, then stops).
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <poll.h>

#include <cerrno>
#include <cmath>

#include "cluster/agent/agent_internal.h"
#include "cluster/agent/clusterd.h"
#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/dns/resolver.h"

namespace zm::cluster {
namespace {

constexpr size_t kMaxPemBytes = 1 << 20;

absl::StatusOr<PeerSecurity> Security(const ClusterConf& conf) {
  auto cert = fs::ReadFile(conf.tls_cert, kMaxPemBytes);
  if (!cert.ok()) return cert.status();
  auto key = fs::ReadFile(conf.tls_key, kMaxPemBytes);
  if (!key.ok()) return key.status();
  auto ca = fs::ReadFile(conf.tls_ca, kMaxPemBytes);
  if (!ca.ok()) return ca.status();
  PeerSecurity sec;
  grpc::SslServerCredentialsOptions so(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  so.pem_root_certs = *ca;
  so.pem_key_cert_pairs.push_back({*key, *cert});
  sec.server = grpc::SslServerCredentials(so);
  grpc::SslCredentialsOptions co;
  co.pem_root_certs = *ca;
  co.pem_private_key = *key;
  co.pem_cert_chain = *cert;
  sec.channel = grpc::SslCredentials(co);
  sec.target_name_is_node_id = true;
  sec.identity =
      [](const grpc::ServerContext& ctx) -> absl::StatusOr<std::string> {
    auto auth = ctx.auth_context();
    if (!auth || !auth->IsPeerAuthenticated()) {
      return absl::UnauthenticatedError("no verified certificate");
    }
    auto cn = auth->FindPropertyValues("x509_common_name");
    if (cn.empty()) return absl::UnauthenticatedError("certificate has no CN");
    return std::string(cn.front().data(), cn.front().size());
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
  // cluster.conf says the suspicion timeout in time, the membership in
  // probe intervals.
  m.suspicion_mult = std::max<int>(
      1, static_cast<int>(std::lround(static_cast<double>(conf.suspicion_min_ms) /
                                      std::max<int64_t>(1, conf.probe_interval_ms))));
  m.suspicion_max_mult = std::max<int>(
      1, static_cast<int>(std::lround(static_cast<double>(conf.suspicion_max_ms) /
                                      std::max<int64_t>(1, conf.suspicion_min_ms))));

  if (conf.rate_slots) o.state.rate_window_slots = *conf.rate_slots;
  if (conf.rate_slot_seconds) o.state.rate_slot_seconds = *conf.rate_slot_seconds;
  o.state.tombstone_horizon_ms = conf.policy_tombstone_horizon_ms;
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
  for (;;) {
    struct pollfd pfd = {daemon.signal_fd(), POLLIN, 0};
    if (::poll(&pfd, 1, -1) < 0 && errno != EINTR) break;
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
