// One SMTP session on a socket: the Session's actions carried out with
// Asio (reads, batched writes, tarpit delays, TLS, policy checks on the
// worker pool, the spool).
#include <sys/time.h>

#include <cstring>
#include <mutex>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/smtpserver/smtpserver_clientdns.h"
#include "node/smtpserver/smtpserver_internal.h"
#include "node/smtpserver/smtpserver_tls.h"

namespace zm::smtpserver::internal {
namespace {

// Plain connections read through one buffer per I/O thread: an idle
// session holds no read buffer at all (it waits for readability first).
constexpr size_t kReadChunk = 64 * 1024;
// TLS connections read through their own buffer (OpenSSL's records are
// up to 16 KiB anyway).
constexpr size_t kTlsReadChunk = 16 * 1024;

auto Token(std::error_code& ec) {
  return asio::redirect_error(asio::use_awaitable, ec);
}

const ServerConfig& Cfg(const Conn& c) { return c.gen->settings->server; }

void SetDeadline(Conn& c, int seconds) {
  c.timeout_sec = seconds;
  Clock::time_point old = c.deadline;
  c.deadline = Clock::now() + std::chrono::seconds(seconds);
  // The watchdog sleeps until the old deadline: wake it to re-arm when
  // the new one is sooner (data-timeout is shorter than idle-timeout).
  if (c.deadline < old) c.timer.cancel();
}

asio::awaitable<bool> Write(Conn& c, const std::string& data) {
  if (data.empty()) co_return true;
  if (!c.timed_out) SetDeadline(c, Cfg(c).idle_timeout_sec);
  std::error_code ec;
  if (c.tls) {
    co_await asio::async_write(*c.tls, asio::buffer(data), Token(ec));
  } else {
    co_await asio::async_write(c.socket, asio::buffer(data), Token(ec));
  }
  co_return !ec;
}

// Waits the Session's tarpit delay, then sends what it has to say.
asio::awaitable<bool> Flush(Conn& c) {
  uint32_t delay_ms = c.session->TakeDelayMs();
  if (delay_ms > 0 && !c.timed_out) {
    c.deadline = Clock::now() + std::chrono::milliseconds(delay_ms) +
                 std::chrono::seconds(Cfg(c).idle_timeout_sec);
    asio::steady_timer t(c.socket.get_executor());
    t.expires_after(std::chrono::milliseconds(delay_ms));
    std::error_code ec;
    co_await t.async_wait(Token(ec));
  }
  std::string out = c.session->TakeOutput();
  bool ok = co_await Write(c, out);
  co_return ok;
}

// Reads what the client sent into the Session; false: the session is over
// (timeout said and done).
asio::awaitable<bool> ReadInput(ServerContext& ctx, Conn& c) {
  smtp::Session& session = *c.session;
  bool in_data = session.state() == smtp::Session::State::kData;
  // The idle timeout bounds a whole command line, not each byte of it: a
  // client trickling a line (slowloris) keeps the deadline it started with.
  if (in_data || session.buffered_input() == 0 || c.timeout_sec == 0) {
    SetDeadline(c, in_data ? Cfg(c).data_timeout_sec : Cfg(c).idle_timeout_sec);
  }
  // data-min-rate: each window of the transfer must bring rate * window
  // bytes. The watchdog checks that at the window's end; here the window
  // is only opened (once per transfer) and its bytes counted.
  const uint64_t need = uint64_t(Cfg(c).data_min_rate) *
                        uint64_t(Cfg(c).data_min_rate_window_sec);
  const bool rate_on = in_data && need > 0;
  if (!rate_on) {
    c.rate_window_open = false;
  } else if (!c.rate_window_open) {
    c.rate_window_open = true;
    c.rate_need = need;
    c.rate_window_sec = Cfg(c).data_min_rate_window_sec;
    c.rate_window_bytes = 0;
    c.rate_check = Clock::now() + std::chrono::seconds(c.rate_window_sec);
    if (c.rate_check < c.deadline) c.timer.cancel();  // the watchdog re-arms
  }
  c.reading_command = !in_data;
  std::error_code ec;
  // A deadline that passed while no read was waiting (our own work on the
  // pool): no read, the session ends below.
  if (!c.timed_out) {
    if (c.tls) {
      std::unique_ptr<char[]> buf(new char[kTlsReadChunk]);
      size_t n = co_await c.tls->async_read_some(
          asio::buffer(buf.get(), kTlsReadChunk), Token(ec));
      if (!ec) {
        c.rate_window_bytes += n;
        session.Input(std::string_view(buf.get(), n));
      }
    } else {
      co_await c.socket.async_wait(tcp::socket::wait_read, Token(ec));
      if (!ec) {
        // No suspension between the read and Input(): the buffer is this
        // thread's alone meanwhile.
        static thread_local char buf[kReadChunk];
        size_t n = c.socket.read_some(asio::buffer(buf, kReadChunk), ec);
        if (ec == asio::error::would_block || ec == asio::error::try_again) {
          ec.clear();  // spurious wake-up: Step() asks for input again
        } else if (!ec) {
          c.rate_window_bytes += n;
          session.Input(std::string_view(buf, n));
        }
      }
    }
  }
  c.reading_command = false;
  if (c.rate_too_low) {
    ctx.log.Info(session.queue_id(),
                 StrCat("transfer too slow from ", c.label, ": ",
                        c.rate_window_bytes, " bytes in ", c.rate_window_sec,
                        "s, data-min-rate ", Cfg(c).data_min_rate, " bytes/s"));
    std::string bye = smtp::MakeReply(smtp::ReplyId::kIdleTimeout,
                                      "Data transfer too slow, closing "
                                      "connection")
                          .Format(c.gen->session.enhanced_status_codes);
    co_await Write(c, bye);
    co_return false;
  }
  if (c.timed_out) {
    ctx.log.Info(session.queue_id(),
                 StrCat("timeout after ", c.timeout_sec, "s ",
                        in_data ? "in DATA " : "", "from ", c.label));
    std::string bye = smtp::MakeReply(smtp::ReplyId::kIdleTimeout)
                          .Format(c.gen->session.enhanced_status_codes);
    co_await Write(c, bye);
    co_return false;
  }
  if (ec == asio::error::operation_aborted && c.stop_poked) {
    c.stop_poked = false;
    co_return true;  // Step() now answers 421 4.3.2
  }
  if (ec) {
    if (in_data) {
      ctx.log.Info(session.queue_id(),
                   StrCat("lost connection after DATA from ", c.label));
    }
    session.InputEof();
  }
  co_return true;
}

std::string DescribeForLog(const smtp::TlsInfo& t) {
  return StrCat(
      t.version, " cipher ", t.cipher, " (", t.bits, " bits)",
      t.resumed ? ", resumed" : "",
      t.peer_subject.empty()
          ? std::string()
          : StrCat(", client ", t.peer_subject,
                   t.peer_verified ? " (verified)" : " (not verified)"));
}

// The TLS handshake on c.socket; c.tls is set on success.
asio::awaitable<bool> Handshake(ServerContext& ctx, Conn& c,
                                smtp::TlsInfo* info) {
  if (!c.gen->tls) co_return false;
  c.tls =
      std::make_unique<asio::ssl::stream<tcp::socket&>>(c.socket, *c.gen->tls);
  // tls-ccert-vd: how deep a client certificate's chain may be.
  if (Cfg(c).tls.ccert_vd >= 0) {
    ::SSL_set_verify_depth(c.tls->native_handle(), Cfg(c).tls.ccert_vd);
  }
  SetDeadline(c, Cfg(c).idle_timeout_sec);
  std::error_code ec;
  co_await c.tls->async_handshake(asio::ssl::stream_base::server, Token(ec));
  if (ec || c.timed_out) {
    ctx.log.Info("", StrCat("TLS handshake with ", c.label, " failed: ",
                            c.timed_out ? "timeout" : ec.message()));
    c.tls.reset();
    co_return false;
  }
  *info = DescribeTls(c.tls->native_handle());
  // tls-loglevel 0: no line per handshake (failures are always logged).
  if (Cfg(c).tls.loglevel > 0) {
    ctx.log.Info("", StrCat("TLS from ", c.label, ": ", DescribeForLog(*info)));
  }
  co_return true;
}

// GroupCommitter::Submit (with the message's last bytes), resumed on the
// caller's executor. `sub` and `tail` are named locals of the suspended
// caller (see InPool about GCC 12).
asio::awaitable<absl::Status> GroupCommit(
    spool::GroupCommitter& committer,
    const std::shared_ptr<spool::Submission>& sub, std::string& tail) {
  auto ex = co_await asio::this_coro::executor;
  auto init = [&committer, ex, &sub, &tail](auto handler) {
    // std::function needs a copyable callable; the handler is move-only.
    auto h = std::make_shared<decltype(handler)>(std::move(handler));
    committer.Submit(
        sub,
        [h, ex](absl::Status st) {
          asio::post(ex, [h, st]() mutable { std::move (*h)(st); });
        },
        std::move(tail));
  };
  absl::Status st = co_await asio::async_initiate<const asio::use_awaitable_t<>,
                                                  void(absl::Status)>(
      init, asio::use_awaitable);
  co_return st;
}

// The end of data when the message must be complete on disk before the
// decision (content filter, SPF/DKIM, milters): ONE pool task writes the
// message out, decides, puts the checks' headers on top, asks the milters
// and, when the message is then simply accepted, hands it to the committer
// itself. The session resumes once, from the pool (refused, frozen, a
// milter involved) or from the committer (committed: *commit set).
struct EndOfData {
  smtp::Verdict verdict;
  absl::Status failed;                 // writing the staged file
  std::optional<absl::Status> commit;  // handed to the committer: its outcome
};

asio::awaitable<void> DecideStagedMessage(
    ServerContext& ctx, Conn& c, const std::shared_ptr<smtp::Check>& check,
    const std::shared_ptr<EndOfData>& out) {
  smtp::Session& session = *c.session;
  const smtp::Session* sp = &session;
  smtp::Checks* checks = c.gen->checks.get();
  MilterSession* milter = c.milter.get();
  std::shared_ptr<spool::Submission> sub = c.sub;
  auto tail = std::make_shared<std::string>(std::move(c.tail));
  c.tail.clear();
  spool::GroupCommitter* committer = &ctx.committer;
  auto ex = co_await asio::this_coro::executor;
  asio::thread_pool& pool = ctx.pool;
  auto init = [&pool, ex, checks, sp, check, out, milter, sub, tail,
               committer](auto handler) {
    auto h = std::make_shared<decltype(handler)>(std::move(handler));
    asio::post(pool,
               [h, ex, checks, sp, check, out, milter, sub, tail, committer]() {
                 auto resume = [h, ex] {
                   asio::post(ex, [h]() mutable { std::move (*h)(); });
                 };
                 absl::Status st = sub->Append(*tail);
                 if (st.ok())
                   st = sub->Prepare(/*sync=*/false);  // readable in full
                 check->message_size = sub->size();
                 if (!st.ok()) {
                   out->failed = st;
                   resume();
                   return;
                 }
                 smtp::Verdict& v = out->verdict;
                 v = checks->Decide(*sp, *check);
                 // The checks' headers (Authentication-Results:,
                 // DKIM-Signature:) go on top of the staged message before the
                 // milters see it (they may rewrite the file, and read those
                 // headers).
                 if (!v.prepend_headers.empty() &&
                     v.outcome != smtp::Verdict::Outcome::kReject) {
                   out->failed = sub->PrependToMessage(v.prepend_headers);
                   v.prepend_headers.clear();
                   if (!out->failed.ok()) {
                     resume();
                     return;
                   }
                 }
                 if (milter) {
                   v = milter->Check(*sp, *check, std::move(v));
                   resume();  // a milter may discard: the session commits
                   return;
                 }
                 if (v.outcome != smtp::Verdict::Outcome::kAccept || v.close ||
                     sp->frozen()) {
                   resume();
                   return;
                 }
                 committer->Submit(sub, [out, resume](absl::Status cs) {
                   out->commit = cs;
                   resume();
                 });
               });
  };
  co_await asio::async_initiate<const asio::use_awaitable_t<>, void()>(
      init, asio::use_awaitable);
}

// A policy decision: on the session's strand when the Checks say it is
// quick (and no milter is asked), else on the worker pool.
asio::awaitable<void> RunCheck(ServerContext& ctx, Conn& c) {
  smtp::Session& session = *c.session;
  auto check = std::make_shared<smtp::Check>(session.pending_check());
  auto verdict = std::make_shared<smtp::Verdict>();
  const smtp::Session* sp = &session;
  smtp::Checks* checks = c.gen->checks.get();
  if (check->kind == smtp::CheckKind::kMessage && c.sub) {
    SetDeadline(c, Cfg(c).data_end_timeout_sec);
    std::shared_ptr<spool::Submission> sub = c.sub;
    c.tail += session.TakeData();
    check->staged_path = sub->path();
    check->queue_id = sub->queue_id();
    if (!c.milter && checks->Quick(session, *check)) {
      // Nothing reads the file before the commit: decide here; the
      // committer appends the tail (CommitMessage).
      check->message_size = sub->size() + c.tail.size();
      smtp::Verdict v = checks->Decide(session, *check);
      if (v.outcome == smtp::Verdict::Outcome::kReject) c.tail.clear();
      session.CheckDone(std::move(v));
      co_return;
    }
    auto out = std::make_shared<EndOfData>();
    co_await DecideStagedMessage(ctx, c, check, out);
    if (!out->failed.ok()) {
      ctx.log.Warning(sub->queue_id(),
                      StrCat("spool write failed: ", Message(out->failed)));
      out->verdict = smtp::Verdict::Reject(smtp::MakeReply(
          smtp::ReplyId::kSpoolError, "Local error writing the message"));
    }
    c.early_commit = out->commit;
    session.CheckDone(std::move(out->verdict));
    co_return;
  }
  if (check->kind == smtp::CheckKind::kMailFrom &&
      Cfg(c).min_availspace_kib > 0) {
    // min-availspace, once per transaction: statfs does not block, so it
    // is asked here, on the strand.
    uint64_t min_kib = Cfg(c).min_availspace_kib;
    auto avail = fs::AvailableKiB(ctx.spool.root());
    if (avail.ok() && *avail < min_kib) {
      ctx.log.Warning(
          "", StrCat("MAIL from ", c.label, " refused: ", *avail,
                     " KiB free in the spool, ", "min-availspace ", min_kib));
      session.CheckDone(smtp::Verdict::Reject(
          smtp::MakeReply(smtp::ReplyId::kDiskFull,
                          "Insufficient system storage, try again later")));
      co_return;
    }
  }
  MilterSession* milter = c.milter.get();
  if (!milter && checks->Quick(session, *check)) {
    session.CheckDone(checks->Decide(session, *check));
    co_return;
  }
  auto work = [checks, sp, check, verdict, milter]() {
    *verdict = checks->Decide(*sp, *check);
    if (milter) *verdict = milter->Check(*sp, *check, std::move(*verdict));
    return absl::OkStatus();
  };
  co_await InPool(ctx.pool, work);
  session.CheckDone(std::move(*verdict));
}

asio::awaitable<void> BeginMessage(ServerContext& ctx, Conn& c) {
  smtp::Session& session = *c.session;
  int64_t now = NowUsec();
  auto env = std::make_shared<mail::Envelope>(session.envelope());
  env->arrival_usec = now;
  auto holder = std::make_shared<std::unique_ptr<spool::Submission>>();
  spool::Spool* spool = &ctx.spool;
  // min-availspace was checked at MAIL (RunCheck); a disk that fills up
  // since then fails the writes (452 4.3.1 after the data).
  auto work = [spool, env, holder]() {
    auto b = spool->Begin(*env);
    if (!b.ok()) return b.status();
    *holder = std::move(*b);
    return absl::OkStatus();
  };
  absl::Status st = co_await InPool(ctx.pool, work);
  if (st.ok()) {
    c.sub = std::shared_ptr<spool::Submission>(std::move(*holder));
    ctx.log.Info(c.sub->queue_id(),
                 StrCat("client=", c.label, ", helo=<", session.helo(), ">",
                        session.authenticated()
                            ? StrCat(", sasl_username=", session.auth_user())
                            : std::string()));
    session.MessageBegun(st, c.sub->queue_id(), now);
  } else {
    ctx.log.Warning("", StrCat("cannot accept a message from ", c.label, ": ",
                               Message(st)));
    session.MessageBegun(st, "", now);
  }
}

asio::awaitable<void> AppendData(ServerContext& ctx, Conn& c) {
  auto data = std::make_shared<std::string>(c.session->TakeData());
  std::shared_ptr<spool::Submission> sub = c.sub;
  if (!sub) co_return;
  auto work = [sub, data]() { return sub->Append(*data); };
  absl::Status st = co_await InPool(ctx.pool, work);
  if (!st.ok()) {
    ctx.log.Warning(sub->queue_id(),
                    StrCat("spool write failed: ", Message(st)));
    c.session->AppendFailed(st);
  }
}

// "<id>.<cause>": the cause as one word of [a-z0-9-].
std::string FreezerName(const std::string& qid, const std::string& reason) {
  std::string cause;
  for (char ch : reason) {
    char l = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if ((l >= 'a' && l <= 'z') || (l >= '0' && l <= '9') || l == '-') {
      cause += l;
    } else if (!cause.empty()) {
      break;
    }
    if (cause.size() >= 32) break;
  }
  return StrCat(qid, ".", cause.empty() ? "policy" : cause);
}

asio::awaitable<void> CommitMessage(ServerContext& ctx, Conn& c) {
  smtp::Session& session = *c.session;
  SetDeadline(c, Cfg(c).data_end_timeout_sec);
  c.tail += session.TakeData();
  auto data = std::make_shared<std::string>(std::move(c.tail));
  c.tail.clear();
  std::optional<absl::Status> early = c.early_commit;
  c.early_commit.reset();
  std::shared_ptr<spool::Submission> sub = c.sub;
  if (!sub) {
    session.MessageCommitted(absl::InternalError("no message in progress"));
    co_return;
  }
  if (c.milter && c.milter->TakeDiscard()) {
    // A milter said discard: the client hears 250, nothing is kept.
    ctx.log.Info(sub->queue_id(), "discarded by milter");
    c.sub.reset();
    session.MessageCommitted(absl::OkStatus());
    c.gen->checks->Record(session, smtp::Checks::Event::kCommitted);
    co_return;
  }
  absl::Status st;
  if (early) {
    // The end-of-data task committed it already (DecideStagedMessage).
    st = *early;
  } else if (session.frozen()) {
    std::string name = FreezerName(sub->queue_id(), session.freeze_reason());
    std::string freezer = ctx.spool.Path(spool::kFreezer);
    auto work = [sub, data, name, freezer]() {
      // After a kMessage check the data is in already (and prepared).
      absl::Status s = data->empty() ? absl::OkStatus() : sub->Append(*data);
      if (s.ok()) s = sub->Prepare(/*sync=*/true);
      if (s.ok()) s = sub->Publish(spool::kFreezer, name);
      if (s.ok()) s = fs::FsyncDir(freezer);
      return s;
    };
    st = co_await InPool(ctx.pool, work);
    if (st.ok()) {
      ctx.log.Info(sub->queue_id(),
                   StrCat("frozen: ", session.freeze_reason()));
    }
  } else {
    // Straight to the committer, which appends what is left of the data.
    std::string& tail = *data;
    st = co_await GroupCommit(ctx.committer, sub, tail);
  }
  if (!st.ok()) {
    ctx.log.Warning(sub->queue_id(),
                    StrCat("spool commit failed: ", Message(st)));
  }
  c.sub.reset();
  if (st.ok()) {
    ctx.metrics.Received(session.envelope().recipients.size(), sub->size());
  }
  session.MessageCommitted(st);
  if (st.ok()) c.gen->checks->Record(session, smtp::Checks::Event::kCommitted);
}

// The client's reverse name and DNSBL listing (smtpserver_clientdns.h),
// looked up on the DNS pool; the session waits at most client-dns-timeout
// and goes on without them (a late answer is dropped).
asio::awaitable<void> LookUpClientDns(ServerContext& ctx, Conn& c,
                                      const PolicyAttrs& attrs,
                                      smtp::ClientInfo* ci) {
  const ServerConfig& cfg = Cfg(c);
  auto query = std::make_shared<ClientDnsQuery>();
  query->ip = c.ip;
  query->reverse = cfg.reverse_dns;
  query->dnsbl_zones = DnsblZonesFor(attrs, cfg);
  if (!ctx.dns || (!query->reverse && query->dnsbl_zones.empty())) co_return;
  // A flood of clients while DNS is slow: do not queue without end.
  constexpr int kMaxPending = 512;
  if (ctx.dns_pending.fetch_add(1) >= kMaxPending) {
    ctx.dns_pending.fetch_sub(1);
    ctx.log.Warning("", StrCat("client DNS of ", c.ip,
                               " skipped: too many lookups waiting"));
    co_return;
  }
  struct Answer {
    std::mutex mu;
    bool done = false;
    ClientDns dns;
  };
  auto answer = std::make_shared<Answer>();
  auto ex = co_await asio::this_coro::executor;
  auto timer = std::make_shared<asio::steady_timer>(ex);
  timer->expires_after(std::chrono::seconds(cfg.client_dns_timeout_sec));
  dns::Resolver* resolver = ctx.dns;
  std::atomic<int>* pending = &ctx.dns_pending;
  asio::post(ctx.dns_pool, [answer, timer, ex, resolver, query, pending] {
    ClientDns d = LookUpClient(*resolver, *query);
    pending->fetch_sub(1);
    {
      std::lock_guard<std::mutex> lock(answer->mu);
      answer->dns = std::move(d);
      answer->done = true;
    }
    asio::post(ex, [timer] { timer->cancel(); });
  });
  std::error_code ec;
  co_await timer->async_wait(Token(ec));
  ClientDns d;
  {
    std::lock_guard<std::mutex> lock(answer->mu);
    if (!answer->done) {
      ctx.log.Info("", StrCat("client DNS of ", c.ip, " took longer than ",
                              cfg.client_dns_timeout_sec, "s: unknown"));
      co_return;
    }
    d = std::move(answer->dns);
  }
  if (!d.ptr.empty() && d.name.empty()) {
    ctx.log.Info("", StrCat("reverse name ", d.ptr, " of ", c.ip,
                            " not confirmed by its address records"));
  }
  if (!d.name.empty()) {
    ci->name = d.name;
    c.label = StrCat(d.name, "[", c.ip, "]");
  }
  if (!d.dnsbl_zone.empty()) {
    ctx.log.Info("", StrCat("client ", c.label, " listed in ", d.dnsbl_zone,
                            ": ", d.dnsbl_text));
    ci->dnsbl_zone = std::move(d.dnsbl_zone);
    ci->dnsbl_text = std::move(d.dnsbl_text);
  }
}

}  // namespace

int64_t NowUsec() {
  struct timeval tv;
  ::gettimeofday(&tv, nullptr);
  return int64_t{tv.tv_sec} * 1000000 + tv.tv_usec;
}

asio::awaitable<void> Converse(ServerContext& ctx, Conn& c) {
  const Generation& g = *c.gen;
  metrics::GaugeScope active(ctx.metrics.sessions);
  std::error_code ec;
  smtp::ClientInfo ci;
  ci.addr = c.ip;
  ci.listener = c.listener;
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
  if (!c.proxy_port.empty()) ci.port = c.proxy_port;
  if (!c.proxy_local_addr.empty()) ci.local_addr = c.proxy_local_addr;
  // The client's smtp-policy attributes: looked up once per session, here,
  // and shared with the checks (SetClientAttrs below).
  auto client_attrs =
      std::make_shared<const PolicyAttrs>(g.settings->policy.ForIp(c.ip));
  ci.trusted = IsTrustedNetwork(*client_attrs);
  // Ident runs meanwhile on this strand; the greeting waits for neither
  // longer than its timeout. Not for PROXY clients: they reached the
  // proxy, not an address of ours.
  std::shared_ptr<IdentLookup> ident;
  if (g.settings->server.ident && c.proxy_port.empty() &&
      !ci.local_addr.empty() && !ci.port.empty()) {
    IdentTarget t;
    t.local_addr = ci.local_addr;
    t.client_addr = c.ip;
    ParseNumber(ci.port, &t.client_port);
    t.server_port = local.port();
    t.ident_port = g.settings->server.ident_port;
    t.timeout_sec = g.settings->server.ident_timeout_sec;
    ident = StartIdent(c.socket.get_executor(), t);
  }
  co_await LookUpClientDns(ctx, c, *client_attrs, &ci);
  if (ident) {
    co_await WaitIdent(*ident);
    ci.ident = ident->user;
    ctx.log.Info("", StrCat("ident of ", c.label, ": ",
                            ident->user.empty() ? ident->outcome
                                                : StrCat(ident->user, " (",
                                                         ident->outcome, ")")));
  }
  if (c.listener == smtp::Listener::kSmtps) {
    // Implicit TLS (RFC 8314): the handshake comes before the greeting.
    if (!co_await Handshake(ctx, c, &ci.tls_info)) co_return;
    ci.tls = true;
  }
  c.socket.non_blocking(true, ec);
  c.session = std::make_unique<smtp::Session>(g.session, std::move(ci));
  c.milter = MilterSession::Make(g.settings->server.milters, c.listener,
                                 g.settings->session.hostname, ctx.log);
  smtp::Session& session = *c.session;
  g.checks->SetClientAttrs(session, client_attrs);
  // Whatever ends the session, the checks forget it.
  struct ForgetSession {
    SessionChecks& checks;
    const smtp::Session& session;
    ~ForgetSession() { checks.Forget(session); }
  } forget{*g.checks, session};
  session.SetGreeting(
      g.settings->GreetingText(NowUsec() / 1000000, session.client().name));
  if (c.stop_requested) session.RequestStop();

  for (;;) {
    smtp::Action a = session.Step();
    switch (a) {
      case smtp::Action::kNeedInput:
        if (!co_await Flush(c)) co_return;
        if (!co_await ReadInput(ctx, c)) co_return;
        break;
      case smtp::Action::kFlush:
        if (!co_await Flush(c)) co_return;
        break;
      case smtp::Action::kCheck:
        // The transfer is over (end of data) or not begun (DATA, the first
        // BDAT): our own work is not the client's rate.
        c.rate_window_open = false;
        co_await RunCheck(ctx, c);
        break;
      case smtp::Action::kStartTls: {
        if (!co_await Flush(c)) co_return;
        smtp::TlsInfo info;
        if (co_await Handshake(ctx, c, &info)) {
          session.TlsStarted(std::move(info));
        } else {
          session.TlsFailed();
          co_return;  // nothing more can be said in the clear
        }
        break;
      }
      case smtp::Action::kBeginMessage:
        co_await BeginMessage(ctx, c);  // its reply joins the pipelined batch
        break;
      case smtp::Action::kAppend:
        co_await AppendData(ctx, c);
        break;
      case smtp::Action::kCommit:
        c.rate_window_open = false;
        co_await CommitMessage(ctx, c);
        break;
      case smtp::Action::kAbortMessage:
        if (c.sub) {
          ctx.log.Info(c.sub->queue_id(),
                       StrCat("discarded: ", session.last_reply().Summary()));
        }
        c.sub.reset();  // removes the temporary
        c.tail.clear();
        g.checks->Record(session, smtp::Checks::Event::kAborted);
        break;
      case smtp::Action::kClose:
        if (c.sub) {
          ctx.log.Info(c.sub->queue_id(),
                       "discarded: connection closed in DATA");
          g.checks->Record(session, smtp::Checks::Event::kAborted);
        }
        c.sub.reset();
        c.tail.clear();
        co_await Flush(c);
        if (c.tls) {
          std::error_code sec;
          c.tls->shutdown(sec);  // close_notify; no waiting for the peer's
        }
        co_return;
    }
    if (c.stop_requested) session.RequestStop();
  }
}

}  // namespace zm::smtpserver::internal
