// The smtpserver daemon's parts, shared by smtpserver_server.cc (listeners,
// limits, signals, reload) and smtpserver_conn.cc (one SMTP session on a
// socket). Not a public interface.
#ifndef ZM_SMTPSERVER_SMTPSERVER_INTERNAL_H_
#define ZM_SMTPSERVER_SMTPSERVER_INTERNAL_H_

#include <asio.hpp>
#include <atomic>
#include <asio/ssl.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "node/daemon/daemon.h"
#include "node/smtp/check.h"
#include "node/smtp/session.h"
#include "node/smtpserver/smtpserver_auth.h"
#include "node/smtpserver/smtpserver_filter.h"
#include "node/smtpserver/smtpserver_mailauth.h"
#include "node/smtpserver/smtpserver_metrics.h"
#include "node/smtpserver/smtpserver_milter.h"
#include "node/smtpserver/smtpserver_settings.h"
#include "node/spool/group_commit.h"
#include "node/spool/spool.h"

namespace zm::dns {
class Resolver;
}

namespace zm::smtpserver::internal {

using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// Everything a configuration (re)load makes. Sessions hold the one they
// started with; a reload makes a new one for new sessions.
struct Generation {
  std::shared_ptr<const Settings> settings;
  smtp::SessionConfig session;  // settings->session + what the driver adds
  std::shared_ptr<asio::ssl::context> tls;  // null: no TLS
  std::unique_ptr<Authenticator> auth;      // null: AUTH not offered
  std::unique_ptr<ContentFilter> filter;    // null: no contentfilter
  std::unique_ptr<MailAuth> mailauth;       // null: no SPF/DKIM/DMARC
  std::unique_ptr<smtp::Checks> checks;     // uses auth and filter
};

// One client connection. Lives on one strand: every member is touched only
// from there.
struct Conn {
  Conn(tcp::socket s, smtp::Listener l)
      : socket(std::move(s)), timer(socket.get_executor()), listener(l) {}
  tcp::socket socket;
  // Set once TLS is up (port 465 at once, else after STARTTLS).
  std::unique_ptr<asio::ssl::stream<tcp::socket&>> tls;
  asio::steady_timer timer;
  smtp::Listener listener;
  Clock::time_point deadline = Clock::now();
  int timeout_sec = 0;  // what the deadline was set from (for the log)
  bool timed_out = false;
  bool done = false;
  bool reading_command = false;  // idle between commands
  bool stop_poked = false;       // read cancelled by the shutdown
  bool stop_requested = false;   // the server is stopping
  // data-min-rate: the window being measured (DATA/BDAT transfer only).
  bool rate_window_open = false;
  Clock::time_point rate_window_start;
  uint64_t rate_window_bytes = 0;
  bool rate_too_low = false;  // the deadline that fired was the rate's
  std::string ip;
  std::string label;  // "unknown[1.2.3.4]"
  // From a PROXY header (smtpserver_proxy.h): the client's port and the
  // address it connected to; empty: the socket's own.
  std::string proxy_port, proxy_local_addr;
  std::shared_ptr<const Generation> gen;
  std::unique_ptr<smtp::Session> session;
  std::shared_ptr<spool::Submission> sub;  // the message being received
  std::unique_ptr<MilterSession> milter;   // null: no milter for this one
};

// What a session needs of the server; outlives every session.
struct ServerContext {
  Logger& log;
  const NodeDir& node;
  spool::Spool& spool;
  asio::thread_pool& pool;  // blocking work: spool, checks, AUTH
  spool::GroupCommitter& committer;
  const SmtpMetrics& metrics;  // exported counters
  // Client DNS (smtpserver_clientdns.h): reverse name and DNSBL lookups
  // block, so they run on their own pool; `dns` null: none are made.
  dns::Resolver* dns;
  asio::thread_pool& dns_pool;
  std::atomic<int>& dns_pending;  // lookups queued or running
};

// Runs the SMTP conversation on `c` until it ends (QUIT, EOF, timeout,
// error); the caller closes the socket and releases the connection.
asio::awaitable<void> Converse(ServerContext& ctx, Conn& c);

// PROXY protocol (smtpserver_proxy.h, smtpserver_proxy_conn.cc): whether a
// connection from `ip` on `listener` must start with a header, and reading
// it (never past its end). ReadProxyHeader returns "" and sets c.ip,
// c.label, c.proxy_port and c.proxy_local_addr from the header, or says
// what was wrong; the caller bounds it in time by cancelling the socket.
bool ExpectsProxyHeader(const ServerConfig& cfg, smtp::Listener listener,
                        const std::string& ip);
asio::awaitable<std::string> ReadProxyHeader(Conn& c);

// Microseconds since the epoch.
int64_t NowUsec();

// Runs `f` (returning absl::Status) on `pool`; the caller's coroutine
// resumes on its own executor afterwards.
// GCC 12 destroys non-trivial temporaries inside a co_await expression
// too early (seen as use-after-free of captured shared_ptrs), so every
// coroutine here takes references to named locals of its suspended
// caller, or the Conn, and no co_await operand builds such temporaries.
// `f` is a named local of the (suspended) caller.
template <typename F>
asio::awaitable<absl::Status> InPool(asio::thread_pool& pool, const F& f) {
  auto ex = co_await asio::this_coro::executor;
  auto init = [&pool, ex, &f](auto handler) {
    asio::post(pool, [handler = std::move(handler), fn = f, ex]() mutable {
      absl::Status st = fn();
      asio::post(ex, [handler = std::move(handler), st]() mutable {
        std::move(handler)(st);
      });
    });
  };
  absl::Status st = co_await asio::async_initiate<const asio::use_awaitable_t<>,
                                                  void(absl::Status)>(
      init, asio::use_awaitable);
  co_return st;
}

}  // namespace zm::smtpserver::internal

#endif  // ZM_SMTPSERVER_SMTPSERVER_INTERNAL_H_
