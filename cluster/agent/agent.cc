// The agent: wires the state, the membership, both gRPC services, the
// anti-entropy rounds, the ETRN executor and the seed lookups together, and
// runs the periodic work on a ticker thread.
#include "cluster/agent/agent.h"

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/resource_quota.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <random>

#include "absl/synchronization/notification.h"
#include "cluster/agent/agent_internal.h"
#include "node/common/fs.h"
#include "node/common/strings.h"

namespace zm::cluster {
namespace internal {

int64_t UnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace internal

using namespace internal;  // NOLINT: this file is the internals' owner

namespace {

constexpr int64_t kTickMs = 50;
constexpr int64_t kExpireEveryMs = 10000;
constexpr int64_t kStatsEveryMs = 60000;

// "host:0" -> "host:<a free port>": the advertised address must be known
// before the server binds (the membership carries it from the start).
absl::StatusOr<std::string> PickPort(const std::string& listen) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(
        StrCat("listen address '", listen, "' needs host:port"));
  }
  if (listen.substr(colon + 1) != "0") return listen;
  std::string host = listen.substr(0, colon);
  bool v6 = host.size() > 1 && host.front() == '[';
  if (v6) host = host.substr(1, host.size() - 2);
  int fd = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fs::ErrnoStatus("socket", listen, errno);
  sockaddr_storage ss{};
  socklen_t len;
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    ::inet_pton(AF_INET6, host.c_str(), &a->sin6_addr);
    len = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    if (::inet_pton(AF_INET, host.c_str(), &a->sin_addr) != 1) {
      ::close(fd);
      return absl::InvalidArgumentError(
          StrCat("port 0 needs a numeric address, not '", host, "'"));
    }
    len = sizeof *a;
  }
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    int e = errno;
    ::close(fd);
    return fs::ErrnoStatus("bind", listen, e);
  }
  int port = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                      : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  ::close(fd);
  return StrCat(listen.substr(0, colon), ":", port);
}

std::string Describe(const Member& m) {
  return StrCat(m.node_id, " (", m.address, ", generation ", m.generation,
                ", incarnation ", m.incarnation, ")");
}

}  // namespace

class Agent::Impl {
 public:
  Impl(AgentOptions options, Logger& log)
      : opts(std::move(options)), log(log) {}
  ~Impl() { Stop(false); }

  absl::Status Start();
  void Stop(bool graceful);
  // A server for one service on `address`; null if it cannot listen.
  std::unique_ptr<grpc::Server> Serve(
      const std::string& address,
      std::shared_ptr<grpc::ServerCredentials> creds, grpc::Service* service,
      int* port);
  void Ticker();
  void Seeder();
  void OnEvent(const MemberEvent& e);
  // Waits up to `ms` for Stop(); true if stopping.
  bool Sleep(int64_t ms);

  AgentOptions opts;
  Logger& log;
  Counters counters;
  uint64_t generation = 0;
  int port = 0;
  std::unique_ptr<FleetState> state;
  std::unique_ptr<GrpcTransport> transport;
  std::unique_ptr<Membership> membership;
  std::unique_ptr<PeerCheck> check;
  std::unique_ptr<PeerService> peer_service;
  std::unique_ptr<AntiEntropy> anti_entropy;
  std::unique_ptr<EtrnExecutor> etrn;
  std::unique_ptr<LocalService> local_service;
  std::unique_ptr<grpc::Server> peer_server, local_server;
  std::thread ticker, seeder;
  LogLimiter seed_limiter{300000};

  absl::Mutex mu;
  bool stopping ABSL_GUARDED_BY(mu) = false;
  bool stopped = false;  // Stop() is serialised by stop_mu
  absl::Mutex stop_mu;
};

std::unique_ptr<grpc::Server> Agent::Impl::Serve(
    const std::string& address, std::shared_ptr<grpc::ServerCredentials> creds,
    grpc::Service* service, int* port) {
  grpc::ServerBuilder b;
  b.AddListeningPort(address, std::move(creds), port);
  const int max_bytes = static_cast<int>(opts.max_message_bytes);
  b.SetMaxReceiveMessageSize(max_bytes);
  b.SetMaxSendMessageSize(max_bytes);
  // No HTTP/2 BDP pings (see GrpcTransport::StubFor).
  b.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  // Sync handlers (streams hold one each): a bound on threads.
  grpc::ResourceQuota quota(StrCat("clusterd ", address));
  quota.SetMaxThreads(64);
  b.SetResourceQuota(quota);
  b.RegisterService(service);
  auto server = b.BuildAndStart();
  if (*port == 0) server.reset();
  return server;
}

absl::Status Agent::Impl::Start() {
  if (opts.node_id.empty()) {
    return absl::InvalidArgumentError("the agent needs a node id");
  }
  // A fresh generation per start: microseconds since the epoch only grow.
  generation = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
  FleetStateOptions so = opts.state;
  if (opts.state_dir.empty()) {
    auto st = FleetState::InMemory(opts.node_id, generation, so);
    if (!st.ok()) return st.status();
    state = *std::move(st);
  } else {
    if (auto s = fs::MakeDirs(opts.state_dir, 0750); !s.ok()) return s;
    auto st = FleetState::Open(opts.state_dir, opts.node_id, generation, so);
    if (!st.ok()) return st.status();
    state = *std::move(st);
  }

  if (!opts.listen.empty()) {
    auto listen = PickPort(opts.listen);
    if (!listen.ok()) return listen.status();
    opts.listen = *listen;
    if (opts.advertise.empty()) opts.advertise = opts.listen;
    if (!opts.security.server || !opts.security.channel) {
      return absl::InvalidArgumentError("the peer service needs credentials");
    }
  }

  transport = std::make_unique<GrpcTransport>(
      opts, Sender{opts.node_id, generation, opts.advertise}, log, counters);
  MembershipOptions mo = opts.membership;
  mo.self.node_id = opts.node_id;
  mo.self.address = opts.advertise;
  mo.self.generation = generation;
  mo.self.incarnation = 0;
  mo.self.state = MemberState::kAlive;
  mo.self.version = opts.version;
  mo.self.started_unix_ms = UnixMs();
  mo.clock = [] { return SteadyMs(); };
  mo.on_event = [this](const MemberEvent& e) { OnEvent(e); };
  membership = std::make_unique<Membership>(std::move(mo), *transport);

  check = std::make_unique<PeerCheck>(opts, log, counters);
  anti_entropy = std::make_unique<AntiEntropy>(opts, *state, *membership,
                                               *transport, log, counters);
  transport->SetAntiEntropy(anti_entropy.get());
  peer_service = std::make_unique<PeerService>(
      opts, *membership, *state, *anti_entropy, *check, log, counters);
  etrn = std::make_unique<EtrnExecutor>(opts, *state, log, counters);
  local_service = std::make_unique<LocalService>(
      opts, *state, *membership, anti_entropy.get(), *etrn, log, counters);
  state->SetListener([this](const Changes& c) {
    anti_entropy->NoteChanges(c);
    local_service->OnChanges(c);
    for (const auto& r : c.etrn_requests) etrn->Enqueue(r);
  });

  if (!opts.listen.empty()) {
    peer_server = Serve(opts.listen, opts.security.server, peer_service.get(),
                        &port);
    if (!peer_server) {
      return absl::UnavailableError(
          StrCat("cannot listen for peers on ", opts.listen));
    }
  }
  if (!opts.local_socket.empty()) {
    struct stat st;
    if (::lstat(opts.local_socket.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
      ::unlink(opts.local_socket.c_str());  // left by an earlier run
    }
    int local_port = 0;
    local_server = Serve(StrCat("unix:", opts.local_socket),
                         grpc::InsecureServerCredentials(),
                         local_service.get(), &local_port);
    if (!local_server) {
      return absl::UnavailableError(
          StrCat("cannot listen on ", opts.local_socket));
    }
    // The node's programs (same user or group) may talk to it; others not.
    if (::chmod(opts.local_socket.c_str(), 0660) != 0) {
      return fs::ErrnoStatus("chmod", opts.local_socket, errno);
    }
  }

  etrn->Start();
  ticker = std::thread([this] { Ticker(); });
  if (peer_server) seeder = std::thread([this] { Seeder(); });
  log.Info("", StrCat("cluster agent up: node ", opts.node_id, ", generation ",
                      generation,
                      opts.listen.empty() ? std::string(", no peer service")
                                          : StrCat(", gossip on ", opts.listen,
                                                   " as ", opts.advertise)));
  return absl::OkStatus();
}

bool Agent::Impl::Sleep(int64_t ms) {
  absl::MutexLock l(&mu);
  mu.AwaitWithTimeout(absl::Condition(&stopping), absl::Milliseconds(ms));
  return stopping;
}

void Agent::Impl::Ticker() {
  int64_t now = SteadyMs();
  int64_t next_gossip = now, next_expire = now + kExpireEveryMs,
          next_stats = now + kStatsEveryMs;
  uint64_t refutations = 0;
  while (!Sleep(kTickMs)) {
    now = SteadyMs();
    membership->Tick();
    MembershipStats ms = membership->Stats();
    if (ms.refutations > refutations) {
      log.Info("", StrCat("refuted a suspicion of this node: incarnation ",
                          membership->Self().incarnation));
      refutations = ms.refutations;
    }
    if (peer_server && now >= next_gossip) {
      anti_entropy->Round();
      next_gossip = now + opts.gossip_interval_ms;
    }
    if (now >= next_expire) {
      if (auto s = state->Expire(); !s.ok()) {
        log.Error("", StrCat("state expiry: ", Message(s.status())));
      }
      next_expire = now + kExpireEveryMs;
    }
    if (now >= next_stats) {
      log.Info("", StrCat("gossip: members=", membership->LiveCount(),
                          " sent=", counters.bytes_sent.load(),
                          "B received=", counters.bytes_received.load(),
                          "B exchanges=", counters.exchanges.load(),
                          " pushes=", counters.pushes.load(),
                          " applied=", counters.records_applied.load()));
      next_stats = now + kStatsEveryMs;
    }
  }
}

void Agent::Impl::Seeder() {
  do {
    auto seeds = ResolveSeeds(opts, log, seed_limiter);
    seeds.erase(std::remove(seeds.begin(), seeds.end(), opts.advertise),
                seeds.end());
    membership->Join(std::move(seeds));
  } while (!Sleep(std::max<int64_t>(1000, opts.seed_refresh_ms)));
}

void Agent::Impl::OnEvent(const MemberEvent& e) {
  const Member& m = e.member;
  switch (e.type) {
    case MemberEventType::kJoined:
      log.Info("", StrCat("member joined: ", Describe(m),
                          e.previous_generation
                              ? StrCat(", replaces generation ",
                                       e.previous_generation)
                              : std::string()));
      break;
    case MemberEventType::kSuspect:
      log.Info("", StrCat("member suspect: ", Describe(m),
                          m.reporter.empty() ? "" : ", reported by ",
                          m.reporter));
      break;
    case MemberEventType::kAlive:
      log.Info("", StrCat("member refuted suspicion, alive: ", Describe(m)));
      break;
    case MemberEventType::kDead:
      log.Info("", StrCat("member dead: ", Describe(m),
                          m.reporter.empty() ? "" : ", declared by ",
                          m.reporter));
      break;
    case MemberEventType::kLeft:
      log.Info("", StrCat("member left: ", Describe(m)));
      break;
  }
}

void Agent::Impl::Stop(bool graceful) {
  absl::MutexLock stop_lock(&stop_mu);
  if (stopped) return;
  stopped = true;
  if (graceful && membership && peer_server) {
    auto left = std::make_shared<absl::Notification>();
    membership->Leave([left] {
      if (!left->HasBeenNotified()) left->Notify();
    });
    if (left->WaitForNotificationWithTimeout(
            absl::Milliseconds(opts.leave_timeout_ms))) {
      log.Info("", "left the fleet");
    } else {
      log.Warning("", "leaving the fleet: no answer in time");
    }
  }
  {
    absl::MutexLock l(&mu);
    stopping = true;
  }
  if (ticker.joinable()) ticker.join();
  if (seeder.joinable()) seeder.join();
  if (local_service) local_service->Shutdown();
  auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(2);
  if (peer_server) peer_server->Shutdown(deadline);
  if (local_server) local_server->Shutdown(deadline);
  // Every callback handed to the transport runs before the membership
  // goes away.
  if (transport) transport->Shutdown();
  if (etrn) etrn->Stop();
  if (state) state->SetListener([](const Changes&) {});
  peer_server.reset();
  local_server.reset();
  if (!opts.local_socket.empty()) ::unlink(opts.local_socket.c_str());
}

Agent::Agent() = default;
Agent::~Agent() {
  if (impl_) impl_->Stop(false);
}

absl::StatusOr<std::unique_ptr<Agent>> Agent::Start(AgentOptions options,
                                                    Logger& log) {
  std::unique_ptr<Agent> a(new Agent);
  a->impl_ = std::make_unique<Impl>(std::move(options), log);
  if (auto s = a->impl_->Start(); !s.ok()) return s;
  return a;
}

void Agent::Stop(bool graceful) { impl_->Stop(graceful); }
int Agent::peer_port() const { return impl_->port; }
uint64_t Agent::generation() const { return impl_->generation; }
Membership& Agent::membership() { return *impl_->membership; }
FleetState& Agent::state() { return *impl_->state; }

AgentStats Agent::Stats() const {
  const Counters& c = impl_->counters;
  AgentStats s;
  s.bytes_sent = c.bytes_sent;
  s.bytes_received = c.bytes_received;
  s.exchanges = c.exchanges;
  s.pushes = c.pushes;
  s.records_applied = c.records_applied;
  s.peers_refused = c.peers_refused;
  s.etrn_acted = c.etrn_acted;
  s.gossip_ticks = c.gossip_ticks;
  s.gossip_rounds = c.gossip_rounds;
  s.hash_mismatches = c.hash_mismatches;
  s.deltas_gzipped = c.deltas_gzipped;
  s.gossip_idle = impl_->anti_entropy && impl_->anti_entropy->Idle();
  return s;
}

}  // namespace zm::cluster
