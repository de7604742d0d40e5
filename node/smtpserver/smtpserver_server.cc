// The listeners, the connection limits, the per-connection watchdog, the
// privilege drop, and the signal handling (stop, reload).
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <thread>
#include <tuple>

#include "node/common/strings.h"
#include "node/config/cluster_conf.h"
#include "node/daemon/privileges.h"
#include "node/dns/resolver.h"
#include "node/ratetrack/rate_tracker.h"
#include "node/smtpserver/smtpserver.h"
#include "node/smtpserver/smtpserver_checks.h"
#include "node/smtpserver/smtpserver_fleet.h"
#include "node/smtpserver/smtpserver_internal.h"
#include "node/smtpserver/smtpserver_metrics.h"
#include "node/smtpserver/smtpserver_tls.h"

namespace zm::smtpserver {
namespace {

using internal::Clock;
using internal::Conn;
using internal::Generation;
using internal::tcp;

constexpr auto kCloseGrace = std::chrono::seconds(10);  // to say 421
constexpr int kDnsThreads = 4;  // client DNS lookups at once

auto Token(std::error_code& ec) {
  return asio::redirect_error(asio::use_awaitable, ec);
}

// What lives as long as the process, across reloads.
struct Shared {
  std::unique_ptr<metrics::Registry> registry;  // run/metrics/smtpserver.stats
  std::unique_ptr<SmtpMetrics> metrics;         // uses registry
  std::unique_ptr<ratetrack::RateTracker> rates;
  std::unique_ptr<dns::Resolver> dns;
  std::unique_ptr<FleetLink> fleet;  // uses rates: declared after it
};

absl::StatusOr<Shared> MakeShared(const NodeDir& node,
                                  const ServerConfig& config,
                                  const std::string& node_tag, Logger& log) {
  Shared sh;
  sh.registry = metrics::Registry::Open(node.run() + "/metrics", "smtpserver");
  sh.metrics = std::make_unique<SmtpMetrics>(*sh.registry);
  auto cluster_id = config::LoadNodeId(node);
  std::string node_id =
      cluster_id.ok() && !cluster_id->empty() ? *cluster_id : node_tag;
  ratetrack::RateWindow window;
  window.slots = config.rate_slots;
  window.slot_seconds = config.rate_slot_seconds;
  auto rates = ratetrack::RateTracker::Open(node, node_id, window);
  if (!rates.ok()) return rates.status();
  sh.rates = std::move(*rates);
  // A node with a cluster agent (etc/cluster.conf; solo outside a fleet)
  // links to it; the agent may start later or restart: the link keeps
  // trying.
  if (cluster::HasAgent(node)) {
    auto client = cluster::ClusterClient::ForNode(node);
    if (client.ok()) {
      FleetOptions fo;
      fo.node_id = node_id;
      fo.window = window;
      fo.defer_over_limit_sec = config.fleet_defer_over_limit_sec;
      fo.etrn_wait_ms = config.etrn_cluster_wait_sec * 1000;
      fo.in_fleet = cluster::HasCluster(node);
      sh.fleet = FleetLink::Start(std::move(*client), *sh.rates, &log, fo);
      log.Info("", StrCat("fleet: node ", node_id, " linked to ",
                          cluster::SocketPath(node)));
    }
  }
  auto opts = dns::OptionsForNode(node);
  if (!opts.ok()) return opts.status();
  auto resolver = dns::Resolver::Create(*opts);
  if (resolver.ok()) {
    sh.dns = std::move(*resolver);
  } else {
    // Without DNS the checks that need it are skipped; say so.
    log.Warning("", StrCat("no DNS resolver: ", Message(resolver.status())));
  }
  return sh;
}

// Everything a (re)load makes from the files: settings, TLS, AUTH, the
// content filter, checks.
absl::StatusOr<std::shared_ptr<const Generation>> MakeGeneration(
    const NodeDir& node, Logger& log, const Shared& shared) {
  auto settings = LoadSettings(node);
  if (!settings.ok()) return settings.status();
  auto g = std::make_shared<Generation>();
  g->settings = *settings;
  const ServerConfig& c = g->settings->server;
  auto tls = MakeTlsContext(c, node);
  if (!tls.ok()) return tls.status();
  g->tls = std::move(*tls);
  auto auth = MakeAuthenticator(c, node, log);
  if (!auth.ok()) return auth.status();
  g->auth = std::move(*auth);
  auto filter = MakeContentFilter(c, log);
  if (!filter.ok()) return filter.status();
  g->filter = std::move(*filter);
  auto mailauth = MakeMailAuth(c, node, shared.dns.get(), log,
                               g->settings->session.hostname);
  if (!mailauth.ok()) return mailauth.status();
  g->mailauth = std::move(*mailauth);
  g->session = g->settings->session;
  g->session.starttls = g->tls != nullptr && !c.no_starttls;
  g->session.auth = g->auth != nullptr && !c.no_auth;
  CheckDeps deps;
  deps.node = &node;
  deps.log = &log;
  deps.auth = g->auth.get();
  deps.rates = shared.rates.get();
  deps.dns = shared.dns.get();
  deps.filter = g->filter.get();
  deps.mailauth = g->mailauth.get();
  deps.fleet = shared.fleet.get();
  deps.metrics = shared.metrics.get();
  g->checks = MakePolicyChecks(g->settings, deps);
  return std::shared_ptr<const Generation>(std::move(g));
}

// A listening socket, bound before any thread starts (and before the
// privileges that allowed it go).
struct Bound {
  fs::UniqueFd fd;
  tcp::endpoint endpoint;
  smtp::Listener listener;
  std::string address;  // as configured
};

// The (address, port, listener) triples smtpserver.conf asks for.
std::vector<std::tuple<std::string, int, smtp::Listener>> WantedListeners(
    const ServerConfig& c) {
  std::vector<std::string> addrs = c.bind_addresses;
  if (addrs.empty()) addrs.push_back("0.0.0.0");
  std::vector<std::pair<int, smtp::Listener>> ports = {
      {c.bind_port, smtp::Listener::kSmtp}};
  if (c.submission_port > 0)
    ports.emplace_back(c.submission_port, smtp::Listener::kSubmission);
  if (c.smtps_port > 0)
    ports.emplace_back(c.smtps_port, smtp::Listener::kSmtps);
  std::vector<std::tuple<std::string, int, smtp::Listener>> out;
  for (const std::string& a : addrs) {
    for (auto [port, kind] : ports) out.emplace_back(a, port, kind);
  }
  return out;
}

absl::StatusOr<std::vector<Bound>> BindListeners(const ServerConfig& c) {
  std::vector<Bound> out;
  for (const auto& [a, port, kind] : WantedListeners(c)) {
    std::error_code ec;
    asio::ip::address addr = asio::ip::make_address(a, ec);
    if (ec) return absl::InvalidArgumentError(StrCat("bad BindAddress ", a));
    tcp::endpoint ep(addr, static_cast<unsigned short>(port));
    fs::UniqueFd fd(::socket(ep.protocol().family(), SOCK_STREAM | SOCK_CLOEXEC,
                             IPPROTO_TCP));
    int one = 1;
    bool ok =
        fd.valid() &&
        ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ==
            0 &&
        (!addr.is_v6() || ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY,
                                       &one, sizeof one) == 0) &&
        ::bind(fd.get(), ep.data(), static_cast<socklen_t>(ep.size())) == 0 &&
        ::listen(fd.get(), c.listen_queue_size) == 0;
    if (!ok) {
      return absl::UnavailableError(StrCat("cannot listen on [", a, "]:", port,
                                           ": ", std::strerror(errno)));
    }
    out.push_back(Bound{std::move(fd), ep, kind, a});
  }
  return out;
}

// Once the ports are bound: started as root, become the node user
// (`user`, else the owner of the node directory; privileges.h); started
// with a capability (CAP_NET_BIND_SERVICE from the supervisor or
// systemd), drop it. Before any thread starts: capabilities belong to
// threads.
absl::Status DropPrivileges(const NodeDir& node, const std::string& user,
                            Logger& log) {
  if (::geteuid() == 0) {
    auto who = privileges::NodeUser(node, user);
    if (!who.ok()) {
      return absl::InvalidArgumentError(
          StrCat("PARAM user: ", Message(who.status())));
    }
    if (!who->has_value() || (*who)->uid == 0) {
      log.Warning("", "running as root: set PARAM user in smtpserver.conf");
      return absl::OkStatus();
    }
    if (int e = privileges::Apply(privileges::SwitchTo(**who, 0))) {
      return absl::PermissionDeniedError(StrCat(
          "cannot switch to user ", (*who)->name, ": ", std::strerror(e)));
    }
    log.Info("", StrCat("running as user ", (*who)->name));
  }
  uint64_t had = privileges::EffectiveCapabilities();
  if (auto s = privileges::DropCapabilities(); !s.ok()) return s;
  if (had != 0) {
    char hex[32];
    std::snprintf(hex, sizeof hex, "%#llx",
                  static_cast<unsigned long long>(had));
    log.Info("", StrCat("listeners bound: capabilities dropped (", hex, ")"));
  }
  return absl::OkStatus();
}

class Server {
 public:
  Server(Daemon& daemon, Shared shared, std::shared_ptr<const Generation> gen,
         std::string node_tag)
      : daemon_(daemon),
        shared_(std::move(shared)),
        log_(daemon.log()),
        spool_(daemon.node().spool(), std::move(node_tag)),
        control_(asio::make_strand(ioc_)),
        drain_timer_(control_),
        signals_(control_),
        pool_(2),
        dns_pool_(kDnsThreads),
        committer_(spool_),
        ctx_{log_,        daemon.node(),    spool_,
             pool_,       committer_,       *shared_.metrics,
             shared_.dns.get(), dns_pool_, dns_pending_},
        gen_(std::move(gen)) {}

  // Takes the listeners bound before the privileges went.
  void Listen(std::vector<Bound> bound);
  int Run();
  std::string Where() const { return where_; }
  spool::BatchFlush CommitFlush() const { return committer_.flush(); }

 private:
  struct Acceptor {
    std::unique_ptr<tcp::acceptor> acceptor;
    smtp::Listener listener;
  };

  std::shared_ptr<const Generation> generation() {
    absl::MutexLock l(&mu_);
    return gen_;
  }
  asio::awaitable<void> Accept(Acceptor* a);
  // The connection limits: "" when `c` is admitted (and counted), else
  // the limit it reached.
  std::string Admit(const std::shared_ptr<Conn>& c);
  // A trusted proxy's connection: the PROXY header first (smtpserver_proxy.h).
  asio::awaitable<void> ServeProxied(std::shared_ptr<Conn> c);
  asio::awaitable<void> Refuse(tcp::socket socket, smtp::ReplyId why);
  void CloseAcceptors();
  asio::awaitable<void> Serve(std::shared_ptr<Conn> c);
  asio::awaitable<void> Watchdog(std::shared_ptr<Conn> c);
  asio::awaitable<void> Signals();
  asio::awaitable<void> Drain();
  void Reload();
  void Stop();
  void Release(const std::shared_ptr<Conn>& c);
  // Logs what a reloaded configuration asks of the listeners that a
  // reload does not change.
  void CheckListeners(const ServerConfig& c);

  Daemon& daemon_;
  Shared shared_;  // outlives every generation (declared before them)
  Logger& log_;
  spool::Spool spool_;
  asio::io_context ioc_;
  asio::strand<asio::io_context::executor_type> control_;
  asio::steady_timer drain_timer_;
  asio::posix::stream_descriptor signals_;
  asio::thread_pool pool_;
  // Client DNS lookups (reverse name, DNSBL): they block on c-ares, so
  // they have threads of their own, apart from the checks' pool.
  asio::thread_pool dns_pool_;
  std::atomic<int> dns_pending_{0};
  // Shares the disk flushes of concurrent sessions' commits (group
  // commit); destroyed before the io_context its callbacks post to.
  spool::GroupCommitter committer_;
  internal::ServerContext ctx_;
  std::vector<Acceptor> acceptors_;
  std::set<std::pair<std::string, int>> bound_;  // (address, port)
  std::string where_;
  bool stopping_ = false;  // on control_
  // Set at stop: new connections are told 421 4.3.2 until the running
  // sessions are done (then the listeners close).
  std::atomic<bool> draining_{false};

  absl::Mutex mu_;
  std::shared_ptr<const Generation> gen_ ABSL_GUARDED_BY(mu_);
  int total_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, int> per_ip_ ABSL_GUARDED_BY(mu_);
  std::set<std::shared_ptr<Conn>> conns_ ABSL_GUARDED_BY(mu_);
};

void Server::Listen(std::vector<Bound> bound) {
  for (Bound& b : bound) {
    auto acc = std::make_unique<tcp::acceptor>(ioc_);
    acc->assign(b.endpoint.protocol(), b.fd.release());
    StrAppend(&where_, where_.empty() ? "" : " ", "[", b.address,
              "]:", b.endpoint.port(), " (", ListenerName(b.listener), ")");
    acceptors_.push_back(Acceptor{std::move(acc), b.listener});
    bound_.emplace(b.address, b.endpoint.port());
  }
}

void Server::CheckListeners(const ServerConfig& c) {
  for (const auto& [a, port, kind] : WantedListeners(c)) {
    if (bound_.count({a, port})) continue;
    if (port < 1024) {
      log_.Error("", StrCat("reload: [", a, "]:", port,
                            " is below 1024 and the smtpserver gave up the "
                            "right to bind such ports after its start: still "
                            "listening on ",
                            where_, "; restart the smtpserver to move"));
    } else {
      log_.Warning("", StrCat("reload: [", a, "]:", port,
                              " is new; the listeners change only at a "
                              "restart: still listening on ",
                              where_));
    }
  }
}

asio::awaitable<void> Server::Accept(Acceptor* a) {
  tcp::acceptor* acceptor = a->acceptor.get();
  for (;;) {
    tcp::socket socket(asio::make_strand(ioc_));
    std::error_code ec;
    co_await acceptor->async_accept(socket, Token(ec));
    if (ec) {
      if (!acceptor->is_open() || ec == asio::error::operation_aborted)
        co_return;
      log_.Warning("", StrCat("accept: ", ec.message()));
      // Out of descriptors and the like: back off briefly instead of spinning.
      asio::steady_timer t(co_await asio::this_coro::executor);
      t.expires_after(std::chrono::milliseconds(100));
      co_await t.async_wait(Token(ec));
      continue;
    }
    if (draining_.load()) {
      // Told, not reset: the client moves on to another MX at once.
      auto ex = socket.get_executor();
      asio::co_spawn(ex, Refuse(std::move(socket), smtp::ReplyId::kShuttingDown),
                     asio::detached);
      continue;
    }
    auto conn = std::make_shared<Conn>(std::move(socket), a->listener);
    auto remote = conn->socket.remote_endpoint(ec);
    if (ec) continue;  // already gone
    asio::ip::address ra = remote.address();
    if (ra.is_v6() && ra.to_v6().is_v4_mapped()) {
      ra = asio::ip::make_address_v4(asio::ip::v4_mapped, ra.to_v6());
    }
    conn->ip = ra.to_string();
    conn->label = StrCat("unknown[", conn->ip, "]");
    conn->gen = generation();
    const ServerConfig& cfg = conn->gen->settings->server;
    if (cfg.tcp_rcv_buffer > 0) {
      conn->socket.set_option(
          asio::socket_base::receive_buffer_size(cfg.tcp_rcv_buffer), ec);
    }
    if (cfg.tcp_xmit_buffer > 0) {
      conn->socket.set_option(
          asio::socket_base::send_buffer_size(cfg.tcp_xmit_buffer), ec);
    }
    if (internal::ExpectsProxyHeader(cfg, a->listener, conn->ip)) {
      // Admitted once the header names the client: the limits count the
      // client's address, not the proxy's.
      asio::co_spawn(conn->socket.get_executor(), ServeProxied(conn),
                     asio::detached);
      continue;
    }
    std::string why = Admit(conn);
    if (!why.empty()) {
      log_.Warning("", StrCat("refused connection from ", conn->label, ": ",
                              why, " reached"));
      auto ex = conn->socket.get_executor();
      asio::co_spawn(ex,
                     Refuse(std::move(conn->socket),
                            smtp::ReplyId::kTooManyConnections),
                     asio::detached);
      continue;
    }
    asio::co_spawn(conn->socket.get_executor(), Serve(conn), asio::detached);
  }
}

std::string Server::Admit(const std::shared_ptr<Conn>& c) {
  const ServerConfig& cfg = c->gen->settings->server;
  absl::MutexLock l(&mu_);
  std::string why;
  if (total_ >= cfg.max_parallel_connections) {
    why = "MaxParallelConnections";
  } else if (cfg.max_same_ip_source > 0 &&
             per_ip_[c->ip] >= cfg.max_same_ip_source) {
    why = "MaxSameIpSource";
  } else {
    ++total_;
    ++per_ip_[c->ip];
    ctx_.metrics.connections[static_cast<int>(c->listener)].Inc();
    conns_.insert(c);
  }
  if (!why.empty() && per_ip_[c->ip] == 0) per_ip_.erase(c->ip);
  return why;
}

asio::awaitable<void> Server::ServeProxied(std::shared_ptr<Conn> c) {
  std::string proxy = c->label;
  auto expired = std::make_shared<bool>(false);
  c->timer.expires_after(
      std::chrono::seconds(c->gen->settings->server.proxy_timeout_sec));
  c->timer.async_wait([c, expired](std::error_code ec) {
    if (ec) return;
    *expired = true;
    c->socket.cancel(ec);
  });
  std::string why = co_await internal::ReadProxyHeader(*c);
  c->timer.cancel();
  if (*expired) why = "none within proxy-timeout";
  auto ex = c->socket.get_executor();
  if (!why.empty()) {
    log_.Warning("", StrCat("PROXY header from ", proxy, ": ", why,
                            "; connection closed"));
    std::error_code ec;
    c->socket.shutdown(tcp::socket::shutdown_both, ec);
    c->socket.close(ec);
    co_return;
  }
  log_.Info("", StrCat("PROXY header from ", proxy, ": client ", c->label,
                       c->proxy_port.empty() ? "" : " port ", c->proxy_port));
  why = Admit(c);
  if (!why.empty()) {
    log_.Warning("", StrCat("refused connection from ", c->label, ": ", why,
                            " reached"));
    asio::co_spawn(ex,
                   Refuse(std::move(c->socket),
                          smtp::ReplyId::kTooManyConnections),
                   asio::detached);
    co_return;
  }
  asio::co_spawn(ex, Serve(c), asio::detached);
}

asio::awaitable<void> Server::Refuse(tcp::socket socket, smtp::ReplyId why) {
  // 421 in the clear, also on the smtps port: a client that expected TLS
  // only sees the handshake fail, which it retries later.
  std::string r = smtp::MakeReply(why).Format(true);
  std::error_code ec;
  // A few bytes always fit into a fresh socket's send buffer.
  co_await asio::async_write(socket, asio::buffer(r), Token(ec));
  socket.shutdown(tcp::socket::shutdown_both, ec);
  socket.close(ec);
}

void Server::Release(const std::shared_ptr<Conn>& c) {
  bool last = false;
  {
    absl::MutexLock l(&mu_);
    --total_;
    if (--per_ip_[c->ip] <= 0) per_ip_.erase(c->ip);
    conns_.erase(c);
    last = total_ == 0;
  }
  if (last) {
    asio::post(control_, [this] {
      if (stopping_) drain_timer_.cancel();
    });
  }
}

asio::awaitable<void> Server::Watchdog(std::shared_ptr<Conn> c) {
  while (!c->done) {
    // The sooner of the deadline and the end of a data-min-rate window.
    Clock::time_point wake = c->deadline;
    if (c->rate_window_open && !c->timed_out && c->rate_check < wake) {
      wake = c->rate_check;
    }
    c->timer.expires_at(wake);
    std::error_code ec;
    co_await c->timer.async_wait(Token(ec));
    if (c->done) break;
    Clock::time_point now = Clock::now();
    if (c->rate_window_open && !c->timed_out && now >= c->rate_check) {
      if (c->rate_window_bytes < c->rate_need) {
        // Too slow: the reader says 421 and ends the session.
        c->rate_too_low = true;
        c->timed_out = true;
        c->deadline = now + kCloseGrace;
        c->socket.cancel(ec);
        continue;
      }
      // This window brought enough: measure the next one.
      c->rate_window_bytes = 0;
      c->rate_check = now + std::chrono::seconds(c->rate_window_sec);
    }
    if (now < c->deadline) continue;  // the deadline moved on
    if (!c->timed_out) {
      c->timed_out = true;
      c->deadline = Clock::now() + kCloseGrace;
      c->socket.cancel(ec);
    } else {
      c->socket.close(ec);  // could not even say goodbye in time
      break;
    }
  }
}

asio::awaitable<void> Server::Serve(std::shared_ptr<Conn> c) {
  log_.Info(
      "", StrCat("connect from ", c->label, " to ", ListenerName(c->listener)));
  c->deadline = Clock::now() +
                std::chrono::seconds(c->gen->settings->server.idle_timeout_sec);
  asio::co_spawn(c->socket.get_executor(), Watchdog(c), asio::detached);
  try {
    co_await internal::Converse(ctx_, *c);
  } catch (const std::exception& e) {
    log_.Error("", StrCat("session with ", c->label, " failed: ", e.what()));
  }
  c->done = true;
  c->timer.cancel();
  std::error_code ec;
  c->socket.shutdown(tcp::socket::shutdown_both, ec);
  c->socket.close(ec);
  c->sub.reset();
  std::string stats = c->session ? StrCat(" ", c->session->Stats()) : "";
  // Free the session now, not when the last handler lets go: this also
  // discards a message cut off mid-DATA, so by the time "disconnect" is
  // logged nothing of it is left in the spool.
  c->tls.reset();
  c->session.reset();
  log_.Info("", StrCat("disconnect from ", c->label, stats));
  Release(c);
}

void Server::Stop() {
  // On control_.
  if (stopping_) return;
  stopping_ = true;
  draining_ = true;
  log_.Info("", "stopping: new connections get 421 4.3.2; finishing sessions");
  std::error_code ec;
  std::vector<std::shared_ptr<Conn>> conns;
  int total = 0;
  {
    absl::MutexLock l(&mu_);
    conns.assign(conns_.begin(), conns_.end());
    total = total_;
  }
  for (auto& c : conns) {
    asio::post(c->socket.get_executor(), [c] {
      c->stop_requested = true;
      if (!c->session) return;
      c->session->RequestStop();
      if (c->reading_command && !c->session->in_transaction()) {
        c->stop_poked = true;
        std::error_code e;
        c->socket.cancel(e);
      }
    });
  }
  signals_.close(ec);
  if (total > 0) {
    asio::co_spawn(control_, Drain(), asio::detached);
  } else {
    CloseAcceptors();
  }
}

void Server::CloseAcceptors() {
  // On control_. Once closed, the io_context runs out of work and Run()
  // returns.
  std::error_code ec;
  for (auto& a : acceptors_) a.acceptor->close(ec);
}

asio::awaitable<void> Server::Drain() {
  drain_timer_.expires_after(
      std::chrono::seconds(generation()->settings->server.drain_timeout_sec));
  std::error_code ec;
  co_await drain_timer_.async_wait(Token(ec));
  std::vector<std::shared_ptr<Conn>> conns;
  {
    absl::MutexLock l(&mu_);
    conns.assign(conns_.begin(), conns_.end());
  }
  if (!conns.empty()) {
    log_.Warning("", StrCat("drain timeout: closing ", conns.size(),
                            " sessions still open"));
  }
  for (auto& c : conns) {
    // Whatever they were sending was not acknowledged; the Submission's
    // destructor removes its temporary.
    asio::post(c->socket.get_executor(), [c] {
      std::error_code e;
      c->socket.close(e);
    });
  }
  CloseAcceptors();
}

void Server::Reload() {
  // A new generation for new sessions; a bad file keeps the old one.
  // Listening addresses and ports stay until a restart.
  auto fresh = MakeGeneration(daemon_.node(), log_, shared_);
  if (!fresh.ok()) {
    log_.Error("", StrCat("reload failed, keeping the old configuration: ",
                          Message(fresh.status())));
    return;
  }
  CheckListeners((*fresh)->settings->server);
  {
    absl::MutexLock l(&mu_);
    gen_ = *fresh;
  }
  (void)log_.Reopen();
  log_.Info("", "configuration reloaded");
}

asio::awaitable<void> Server::Signals() {
  for (;;) {
    std::error_code ec;
    co_await signals_.async_wait(asio::posix::stream_descriptor::wait_read,
                                 Token(ec));
    if (ec) co_return;
    for (;;) {
      Daemon::Signal sig = daemon_.TakeSignal();
      if (sig == Daemon::Signal::kNone) break;
      if (sig == Daemon::Signal::kStop) {
        Stop();
        co_return;
      }
      Reload();
    }
  }
}

int Server::Run() {
  // The signal descriptor is the Daemon's; asio gets its own duplicate.
  int fd = ::dup(daemon_.signal_fd());
  if (fd < 0) {
    log_.Error("", "dup(signalfd) failed");
    return 1;
  }
  signals_.assign(fd);
  asio::co_spawn(control_, Signals(), asio::detached);
  for (auto& a : acceptors_) {
    asio::co_spawn(ioc_, Accept(&a), asio::detached);
  }
  unsigned n = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> threads;
  for (unsigned i = 1; i < n; ++i) threads.emplace_back([this] { ioc_.run(); });
  ioc_.run();
  for (auto& t : threads) t.join();
  pool_.join();
  dns_pool_.stop();  // lookups still queued are for closed sessions
  dns_pool_.join();
  log_.Info("", "stopped");
  return 0;
}

}  // namespace

int Run(Daemon& daemon) {
  auto settings = LoadSettings(daemon.node());
  if (!settings.ok()) return Daemon::Fail(daemon.program(), settings.status());
  // Bind, then give up what binding needed, before anything starts a
  // thread (the rate database, the fleet link, the pools do).
  auto bound = BindListeners((*settings)->server);
  if (!bound.ok()) return Daemon::Fail(daemon.program(), bound.status());
  if (auto s = DropPrivileges(daemon.node(), (*settings)->server.run_as_user,
                              daemon.log());
      !s.ok()) {
    return Daemon::Fail(daemon.program(), s);
  }
  auto tag = config::LoadNodeTag(daemon.node());
  if (!tag.ok()) return Daemon::Fail(daemon.program(), tag.status());
  auto shared =
      MakeShared(daemon.node(), (*settings)->server, *tag, daemon.log());
  if (!shared.ok()) return Daemon::Fail(daemon.program(), shared.status());
  auto gen = MakeGeneration(daemon.node(), daemon.log(), *shared);
  if (!gen.ok()) return Daemon::Fail(daemon.program(), gen.status());
  spool::Spool spool(daemon.node().spool(), *tag);
  if (auto s = spool.CreateLayout(); !s.ok())
    return Daemon::Fail(daemon.program(), s);
  const Settings& st = *(*gen)->settings;
  std::string summary = StrCat(st.policy.networks().size(), " policy networks",
                               (*gen)->tls ? "; TLS on" : "; TLS off",
                               (*gen)->auth ? "; AUTH on" : "",
                               (*gen)->filter ? "; content filter on" : "");
  Server server(daemon, std::move(*shared), *gen, *tag);
  server.Listen(std::move(*bound));
  if (auto s = daemon.Ready(); !s.ok())
    return Daemon::Fail(daemon.program(), s);
  daemon.log().Info("", StrCat("listening on ", server.Where(), "; ", summary,
                               "; group commit: ",
                               spool::BatchFlushName(server.CommitFlush()),
                               " per batch"));
  return server.Run();
}

}  // namespace zm::smtpserver
