// The listener, the per-connection coroutine and the signal handling.
#include <sys/signalfd.h>
#include <sys/time.h>

#include <asio.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/config/cluster_conf.h"
#include "node/smtp/basic_checks.h"
#include "node/smtp/session.h"
#include "node/smtpserver/smtpserver.h"
#include "node/smtpserver/smtpserver_settings.h"
#include "node/spool/group_commit.h"
#include "node/spool/spool.h"

namespace zm::smtpserver {
namespace {

using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr auto kCloseGrace = std::chrono::seconds(10);  // to say 421

int64_t NowUsec() {
  struct timeval tv;
  ::gettimeofday(&tv, nullptr);
  return int64_t{tv.tv_sec} * 1000000 + tv.tv_usec;
}

auto Token(std::error_code& ec) {
  return asio::redirect_error(asio::use_awaitable, ec);
}

// One client connection. Lives on one strand: every member is touched only
// from there.
struct Conn {
  explicit Conn(tcp::socket s)
      : socket(std::move(s)), timer(socket.get_executor()) {}
  tcp::socket socket;
  asio::steady_timer timer;
  Clock::time_point deadline = Clock::now();
  bool timed_out = false;
  bool done = false;
  bool reading_command = false;  // idle between commands
  bool stop_poked = false;       // read cancelled by the shutdown
  bool stop_requested = false;   // the server is stopping
  std::string ip;
  std::string label;  // "unknown[1.2.3.4]"
  std::shared_ptr<const Settings> settings;
  std::unique_ptr<smtp::Session> session;
  std::shared_ptr<spool::Submission> sub;  // the message being received
};

class Server {
 public:
  Server(Daemon& daemon, std::shared_ptr<const Settings> settings,
         std::string node_tag)
      : daemon_(daemon),
        log_(daemon.log()),
        spool_(daemon.node().spool(), std::move(node_tag)),
        control_(asio::make_strand(ioc_)),
        drain_timer_(control_),
        signals_(control_),
        pool_(2),
        committer_(spool_),
        settings_(std::move(settings)) {}

  absl::Status Listen();
  int Run();

 private:
  std::shared_ptr<const Settings> settings() {
    absl::MutexLock l(&mu_);
    return settings_;
  }
  asio::awaitable<void> Accept(tcp::acceptor* acceptor);
  asio::awaitable<void> Refuse(tcp::socket socket);
  asio::awaitable<void> Serve(std::shared_ptr<Conn> c);
  asio::awaitable<void> Converse(Conn& c);
  asio::awaitable<bool> ReadInput(Conn& c, std::vector<char>& buf);
  asio::awaitable<void> BeginMessage(Conn& c);
  asio::awaitable<void> AppendData(Conn& c);
  asio::awaitable<void> CommitMessage(Conn& c);
  asio::awaitable<void> Watchdog(std::shared_ptr<Conn> c);
  asio::awaitable<bool> Write(Conn& c, const std::string& data);
  asio::awaitable<bool> Flush(Conn& c);
  asio::awaitable<void> Signals();
  asio::awaitable<void> Drain();
  void Stop();
  void Release(const std::shared_ptr<Conn>& c);

  // Runs `f` (returning absl::Status) on the spool pool; the caller's
  // coroutine resumes on its own strand afterwards.
  // GCC 12 destroys non-trivial temporaries inside a co_await expression
  // too early (seen as use-after-free of captured shared_ptrs), so every
  // coroutine here takes references to named locals of its suspended
  // caller, or the Conn, and no co_await operand builds such temporaries.
  // `f` is a named local of the (suspended) caller.
  template <typename F>
  asio::awaitable<absl::Status> InPool(const F& f) {
    auto ex = co_await asio::this_coro::executor;
    auto init = [this, ex, &f](auto handler) {
      asio::post(pool_, [handler = std::move(handler), fn = f, ex]() mutable {
        absl::Status st = fn();
        asio::post(ex, [handler = std::move(handler), st]() mutable {
          std::move(handler)(st);
        });
      });
    };
    absl::Status st =
        co_await asio::async_initiate<const asio::use_awaitable_t<>,
                                      void(absl::Status)>(init,
                                                          asio::use_awaitable);
    co_return st;
  }

  // Hands `sub` to the group committer; resumes on the caller's strand
  // once the message is durably in router/ (or failed). `sub` is a named
  // local of the suspended caller (see InPool about GCC 12).
  asio::awaitable<absl::Status> GroupCommit(
      const std::shared_ptr<spool::Submission>& sub) {
    auto ex = co_await asio::this_coro::executor;
    auto init = [this, ex, &sub](auto handler) {
      // std::function needs a copyable callable; the handler is move-only.
      auto h = std::make_shared<decltype(handler)>(std::move(handler));
      committer_.Submit(sub, [h, ex](absl::Status st) {
        asio::post(ex, [h, st]() mutable { std::move (*h)(st); });
      });
    };
    absl::Status st =
        co_await asio::async_initiate<const asio::use_awaitable_t<>,
                                      void(absl::Status)>(init,
                                                          asio::use_awaitable);
    co_return st;
  }

  Daemon& daemon_;
  Logger& log_;
  spool::Spool spool_;
  asio::io_context ioc_;
  asio::strand<asio::io_context::executor_type> control_;
  asio::steady_timer drain_timer_;
  asio::posix::stream_descriptor signals_;
  asio::thread_pool pool_;
  // Shares the disk flushes of concurrent sessions' commits (group
  // commit); destroyed before the io_context its callbacks post to.
  spool::GroupCommitter committer_;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors_;
  bool stopping_ = false;  // on control_

  absl::Mutex mu_;
  std::shared_ptr<const Settings> settings_ ABSL_GUARDED_BY(mu_);
  int total_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, int> per_ip_ ABSL_GUARDED_BY(mu_);
  std::set<std::shared_ptr<Conn>> conns_ ABSL_GUARDED_BY(mu_);
};

absl::Status Server::Listen() {
  auto s = settings();
  std::vector<std::string> addrs = s->server.bind_addresses;
  if (addrs.empty()) addrs.push_back("0.0.0.0");
  for (const std::string& a : addrs) {
    std::error_code ec;
    asio::ip::address addr = asio::ip::make_address(a, ec);
    if (ec) return absl::InvalidArgumentError(StrCat("bad BindAddress ", a));
    tcp::endpoint ep(addr, static_cast<unsigned short>(s->server.bind_port));
    auto acc = std::make_unique<tcp::acceptor>(ioc_);
    acc->open(ep.protocol(), ec);
    if (!ec) acc->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec && addr.is_v6()) acc->set_option(asio::ip::v6_only(true), ec);
    if (!ec) acc->bind(ep, ec);
    if (!ec) acc->listen(s->server.listen_queue_size, ec);
    if (ec) {
      return absl::UnavailableError(StrCat("cannot listen on [", a,
                                           "]:", s->server.bind_port, ": ",
                                           ec.message()));
    }
    acceptors_.push_back(std::move(acc));
  }
  return absl::OkStatus();
}

asio::awaitable<void> Server::Accept(tcp::acceptor* acceptor) {
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
    auto conn = std::make_shared<Conn>(std::move(socket));
    auto remote = conn->socket.remote_endpoint(ec);
    if (ec) continue;  // already gone
    asio::ip::address ra = remote.address();
    if (ra.is_v6() && ra.to_v6().is_v4_mapped()) {
      ra = asio::ip::make_address_v4(asio::ip::v4_mapped, ra.to_v6());
    }
    conn->ip = ra.to_string();
    conn->label = StrCat("unknown[", conn->ip, "]");
    conn->settings = settings();
    const ServerConfig& cfg = conn->settings->server;
    bool ok = true;
    std::string why;
    {
      absl::MutexLock l(&mu_);
      if (total_ >= cfg.max_parallel_connections) {
        ok = false;
        why = "MaxParallelConnections";
      } else if (cfg.max_same_ip_source > 0 &&
                 per_ip_[conn->ip] >= cfg.max_same_ip_source) {
        ok = false;
        why = "MaxSameIpSource";
      } else {
        ++total_;
        ++per_ip_[conn->ip];
        conns_.insert(conn);
      }
      if (!ok && per_ip_[conn->ip] == 0) per_ip_.erase(conn->ip);
    }
    if (!ok) {
      log_.Warning("", StrCat("refused connection from ", conn->label, ": ",
                              why, " reached"));
      auto ex = conn->socket.get_executor();
      asio::co_spawn(ex, Refuse(std::move(conn->socket)), asio::detached);
      continue;
    }
    asio::co_spawn(conn->socket.get_executor(), Serve(conn), asio::detached);
  }
}

asio::awaitable<void> Server::Refuse(tcp::socket socket) {
  std::string r =
      smtp::MakeReply(smtp::ReplyId::kTooManyConnections).Format(true);
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

asio::awaitable<bool> Server::Write(Conn& c, const std::string& data) {
  if (data.empty()) co_return true;
  if (!c.timed_out) {
    c.deadline = Clock::now() +
                 std::chrono::seconds(c.settings->server.idle_timeout_sec);
  }
  std::error_code ec;
  co_await asio::async_write(c.socket, asio::buffer(data), Token(ec));
  co_return !ec;
}

asio::awaitable<bool> Server::Flush(Conn& c) {
  std::string out = c.session->TakeOutput();
  bool ok = co_await Write(c, out);
  co_return ok;
}

asio::awaitable<void> Server::Watchdog(std::shared_ptr<Conn> c) {
  while (!c->done) {
    c->timer.expires_at(c->deadline);
    std::error_code ec;
    co_await c->timer.async_wait(Token(ec));
    if (c->done) break;
    if (Clock::now() < c->deadline) continue;  // the deadline moved on
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
  log_.Info("", StrCat("connect from ", c->label));
  c->deadline =
      Clock::now() + std::chrono::seconds(c->settings->server.idle_timeout_sec);
  asio::co_spawn(c->socket.get_executor(), Watchdog(c), asio::detached);
  try {
    co_await Converse(*c);
  } catch (const std::exception& e) {
    log_.Error("", StrCat("session with ", c->label, " failed: ", e.what()));
  }
  c->done = true;
  c->timer.cancel();
  std::error_code ec;
  c->socket.shutdown(tcp::socket::shutdown_both, ec);
  c->socket.close(ec);
  c->sub.reset();
  log_.Info("", StrCat("disconnect from ", c->label,
                       c->session ? StrCat(" ", c->session->Stats())
                                  : std::string()));
  Release(c);
}

asio::awaitable<void> Server::Converse(Conn& c) {
  const Settings& s = *c.settings;
  std::error_code ec;
  smtp::ClientInfo ci;
  ci.addr = c.ip;
  auto remote = c.socket.remote_endpoint(ec);
  if (!ec) ci.port = StrCat(remote.port());
  auto local = c.socket.local_endpoint(ec);
  if (!ec) {
    asio::ip::address la = local.address();
    if (la.is_v6() && la.to_v6().is_v4_mapped()) {
      la = asio::ip::make_address_v4(asio::ip::v4_mapped, la.to_v6());
    }
    ci.local_addr = la.to_string();
  }
  ci.trusted = s.policy.IsTrusted(c.ip);
  c.session = std::make_unique<smtp::Session>(s.session, ci);
  smtp::Session& session = *c.session;
  session.SetGreeting(s.GreetingText(NowUsec() / 1000000));
  smtp::BasicChecks checks(s.domains);
  if (c.stop_requested) session.RequestStop();

  std::vector<char> buf(64 * 1024);
  for (;;) {
    smtp::Action a = session.Step();
    if (a == smtp::Action::kNeedInput) {
      if (!co_await Flush(c)) co_return;
      if (!co_await ReadInput(c, buf)) co_return;
    } else if (a == smtp::Action::kFlush) {
      if (!co_await Flush(c)) co_return;
    } else if (a == smtp::Action::kCheck) {
      session.CheckDone(checks.Decide(session, session.pending_check()));
    } else if (a == smtp::Action::kStartTls) {
      session.TlsFailed();  // STARTTLS is not offered yet
    } else if (a == smtp::Action::kBeginMessage) {
      co_await BeginMessage(c);  // its reply joins the pipelined batch
    } else if (a == smtp::Action::kAppend) {
      co_await AppendData(c);
    } else if (a == smtp::Action::kCommit) {
      co_await CommitMessage(c);
    } else if (a == smtp::Action::kAbortMessage) {
      if (c.sub) {
        log_.Info(c.sub->queue_id(),
                  StrCat("discarded: ", session.last_reply().Summary()));
      }
      c.sub.reset();  // removes the temporary
    } else {          // kClose
      if (c.sub)
        log_.Info(c.sub->queue_id(), "discarded: connection closed in DATA");
      c.sub.reset();
      co_await Flush(c);
      co_return;
    }
    if (c.stop_requested) session.RequestStop();
  }
}

asio::awaitable<bool> Server::ReadInput(Conn& c, std::vector<char>& buf) {
  smtp::Session& session = *c.session;
  const ServerConfig& cfg = c.settings->server;
  c.deadline = Clock::now() + std::chrono::seconds(cfg.idle_timeout_sec);
  c.reading_command = session.state() != smtp::Session::State::kData;
  std::error_code ec;
  size_t n = co_await c.socket.async_read_some(asio::buffer(buf), Token(ec));
  c.reading_command = false;
  if (c.timed_out) {
    log_.Info(
        "", StrCat("timeout after ", cfg.idle_timeout_sec, "s from ", c.label));
    std::string bye = smtp::MakeReply(smtp::ReplyId::kIdleTimeout)
                          .Format(c.settings->session.enhanced_status_codes);
    co_await Write(c, bye);
    co_return false;
  }
  if (ec == asio::error::operation_aborted && c.stop_poked) {
    c.stop_poked = false;
    co_return true;  // Step() now answers 421 4.3.2
  }
  if (ec) {
    if (session.state() == smtp::Session::State::kData) {
      log_.Info(session.queue_id(),
                StrCat("lost connection after DATA from ", c.label));
    }
    session.InputEof();
  } else {
    session.Input(std::string_view(buf.data(), n));
  }
  co_return true;
}

asio::awaitable<void> Server::BeginMessage(Conn& c) {
  smtp::Session& session = *c.session;
  int64_t now = NowUsec();
  auto env = std::make_shared<mail::Envelope>(session.envelope());
  env->arrival_usec = now;
  auto holder = std::make_shared<std::unique_ptr<spool::Submission>>();
  spool::Spool* spool = &spool_;
  uint64_t min_kib = c.settings->server.min_availspace_kib;
  auto work = [spool, env, holder, min_kib]() {
    if (min_kib > 0) {
      auto avail = fs::AvailableKiB(spool->root());
      if (avail.ok() && *avail < min_kib) {
        return absl::ResourceExhaustedError(
            StrCat("only ", *avail, " KiB free in the spool (min-availspace ",
                   min_kib, ")"));
      }
    }
    auto b = spool->Begin(*env);
    if (!b.ok()) return b.status();
    *holder = std::move(*b);
    return absl::OkStatus();
  };
  absl::Status st = co_await InPool(work);
  if (st.ok()) {
    c.sub = std::shared_ptr<spool::Submission>(std::move(*holder));
    log_.Info(c.sub->queue_id(),
              StrCat("client=", c.label, ", helo=<", session.helo(), ">"));
    session.MessageBegun(st, c.sub->queue_id(), now);
  } else {
    log_.Warning("", StrCat("cannot accept a message from ", c.label, ": ",
                            Message(st)));
    session.MessageBegun(st, "", now);
  }
}

asio::awaitable<void> Server::AppendData(Conn& c) {
  auto data = std::make_shared<std::string>(c.session->TakeData());
  std::shared_ptr<spool::Submission> sub = c.sub;
  auto work = [sub, data]() { return sub->Append(*data); };
  absl::Status st = co_await InPool(work);
  if (!st.ok()) {
    log_.Warning(sub->queue_id(), StrCat("spool write failed: ", Message(st)));
    c.session->AppendFailed(st);
  }
}

asio::awaitable<void> Server::CommitMessage(Conn& c) {
  auto data = std::make_shared<std::string>(c.session->TakeData());
  std::shared_ptr<spool::Submission> sub = c.sub;
  auto work = [sub, data]() { return sub->Append(*data); };
  absl::Status st = co_await InPool(work);
  if (st.ok()) st = co_await GroupCommit(sub);
  if (!st.ok()) {
    log_.Warning(sub->queue_id(), StrCat("spool commit failed: ", Message(st)));
  }
  c.sub.reset();
  c.session->MessageCommitted(st);
}

void Server::Stop() {
  // On control_.
  if (stopping_) return;
  stopping_ = true;
  log_.Info("", "stopping: no new connections; finishing sessions");
  std::error_code ec;
  for (auto& a : acceptors_) a->close(ec);
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
  }
}

asio::awaitable<void> Server::Drain() {
  drain_timer_.expires_after(
      std::chrono::seconds(settings()->server.drain_timeout_sec));
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
      // Reload: a new snapshot for new sessions; a bad file keeps the old.
      auto fresh = LoadSettings(daemon_.node());
      if (!fresh.ok()) {
        log_.Error("", StrCat("reload failed, keeping the old configuration: ",
                              Message(fresh.status())));
        continue;
      }
      {
        absl::MutexLock l(&mu_);
        settings_ = *fresh;
      }
      (void)log_.Reopen();
      log_.Info("", "configuration reloaded");
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
    asio::co_spawn(ioc_, Accept(a.get()), asio::detached);
  }
  unsigned n = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> threads;
  for (unsigned i = 1; i < n; ++i) threads.emplace_back([this] { ioc_.run(); });
  ioc_.run();
  for (auto& t : threads) t.join();
  pool_.join();
  log_.Info("", "stopped");
  return 0;
}

}  // namespace

int Run(Daemon& daemon) {
  auto settings = LoadSettings(daemon.node());
  if (!settings.ok()) return Daemon::Fail(daemon.program(), settings.status());
  auto tag = config::LoadNodeTag(daemon.node());
  if (!tag.ok()) return Daemon::Fail(daemon.program(), tag.status());
  spool::Spool spool(daemon.node().spool(), *tag);
  if (auto s = spool.CreateLayout(); !s.ok())
    return Daemon::Fail(daemon.program(), s);
  Server server(daemon, *settings, *tag);
  if (auto s = server.Listen(); !s.ok())
    return Daemon::Fail(daemon.program(), s);
  if (auto s = daemon.Ready(); !s.ok())
    return Daemon::Fail(daemon.program(), s);
  const ServerConfig& c = (*settings)->server;
  std::string where;
  for (const auto& a : c.bind_addresses.empty()
                           ? std::vector<std::string>{"0.0.0.0"}
                           : c.bind_addresses) {
    StrAppend(&where, where.empty() ? "" : " ", "[", a, "]:", c.bind_port);
  }
  daemon.log().Info(
      "", StrCat("listening on ", where, "; ",
                 (*settings)->policy.networks().size(), " policy networks"));
  return server.Run();
}

}  // namespace zm::smtpserver
