// The smtpserver daemon's parts, shared by smtpserver_server.cc (listeners,
// limits, signals, reload) and smtpserver_conn.cc (one SMTP session on a
// socket). Not a public interface.
#ifndef ZM_SMTPSERVER_SMTPSERVER_INTERNAL_H_
#define ZM_SMTPSERVER_SMTPSERVER_INTERNAL_H_

#include <array>
#include <asio.hpp>
#include <asio/ssl.hpp>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "node/daemon/daemon.h"
#include "node/smtp/check.h"
#include "node/smtp/session.h"
#include "node/smtpserver/smtpserver_auth.h"
#include "node/smtpserver/smtpserver_checks.h"
#include "node/smtpserver/smtpserver_filter.h"
#include "node/smtpserver/smtpserver_ident.h"
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
  std::unique_ptr<SessionChecks> checks;    // uses auth and filter
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
  // ReadInput opens it (once per transfer) and counts the bytes; the
  // watchdog checks them at the window's end (rate_check) and either
  // starts the next window or ends the session (rate_too_low).
  bool rate_window_open = false;
  Clock::time_point rate_check;  // the end of the current window
  uint64_t rate_window_bytes = 0;
  uint64_t rate_need = 0;  // bytes each window must bring
  int rate_window_sec = 0;
  bool rate_too_low = false;  // the watchdog found a window short
  std::string ip;
  std::string label;  // "unknown[1.2.3.4]"
  // From a PROXY header (smtpserver_proxy.h): the client's port and the
  // address it connected to; empty: the socket's own.
  std::string proxy_port, proxy_local_addr;
  std::shared_ptr<const Generation> gen;
  std::unique_ptr<smtp::Session> session;
  std::shared_ptr<spool::Submission> sub;  // the message being received
  // End of data: the message's last bytes, taken from the Session but not
  // yet appended (the committer appends them when nothing needed the
  // complete file before the commit).
  std::string tail;
  // End of data: the pool task that decided the message also handed it to
  // the committer; this is the commit's outcome (CommitMessage uses it).
  std::optional<absl::Status> early_commit;
  std::unique_ptr<MilterSession> milter;  // null: no milter for this one
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

// Ident (RFC 1413, smtpserver_ident.h; smtpserver_ident_conn.cc): asks
// the client's ident port from the address it reached, on the session's
// strand, at most timeout_sec; WaitIdent returns once there is an outcome
// (answer, error, timeout). Everything of an IdentLookup is touched only on
// that strand.
struct IdentTarget {
  std::string local_addr, client_addr;  // plain IPs, one family
  int client_port = 0, server_port = 0;
  int ident_port = 113;
  int timeout_sec = 5;
};
struct IdentLookup {
  explicit IdentLookup(const asio::any_io_executor& ex);
  tcp::socket socket;
  asio::steady_timer deadline;  // closes the socket at the timeout
  asio::steady_timer notify;    // wakes WaitIdent
  std::array<char, kMaxIdentReply> buf;
  bool done = false;
  std::string user;     // the USERID answer; "" = none
  std::string outcome;  // for the log: "USERID UNIX", "ERROR NO-USER", ...
};
std::shared_ptr<IdentLookup> StartIdent(const asio::any_io_executor& ex,
                                        const IdentTarget& target);
asio::awaitable<void> WaitIdent(IdentLookup& lookup);

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
