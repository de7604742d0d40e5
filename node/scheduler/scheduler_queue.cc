// Message and recipient state: loading control files, results, retries,
// expiry, DSNs and removal.
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "node/common/strings.h"
#include "node/mail/envelope.h"
#include "node/mail/queue_id.h"
#include "node/mail/xtext.h"
#include "node/scheduler/scheduler.h"
#include "node/scheduler/scheduler_dsn.h"

namespace zm::scheduler {

namespace {
constexpr size_t kMaxControlBytes = 16u << 20;
constexpr size_t kMaxHeadBytes = 64u << 10;
constexpr size_t kMaxDsnOriginalBytes = 32u << 20;
constexpr std::string_view kRetryFolder = "retry";
// What went wrong for rc: its own last diagnostic, else (held back untried)
// its thread's.
const std::string& Diagnostic(const Thread& t, const Rcpt& rc) {
  return rc.last_diag.empty() ? t.last_diag : rc.last_diag;
}
}  // namespace

int64_t NowMs() {
  struct timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

std::string FormatDelay(double v) {
  if (v < 0.005) return "0";
  if (v >= 10) return fmt::format("{:.0f}", v);
  std::string s = fmt::format("{:.2f}", v);
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

int64_t NextAttemptMs(const ThreadParams& p, int attempts, int64_t now_ms,
                      uint64_t* rng) {
  const auto& r = p.retries;
  size_t n = r.size();
  size_t i = static_cast<size_t>(std::max(attempts, 1) - 1);
  if (i >= n) {
    // Past the end: restart somewhere in the second half of the sequence.
    *rng = *rng * 6364136223846793005ULL + 1442695040888963407ULL;
    size_t half = n / 2;
    i = half + static_cast<size_t>((*rng >> 33) % (n - half));
  }
  int64_t next = now_ms + p.interval_ms * r[i];
  if (p.skew > 0 && attempts > p.skew && p.interval_ms >= 1000) {
    // Align later tries to interval boundaries, so retries of many
    // messages to one host bunch together.
    next = (next + p.interval_ms - 1) / p.interval_ms * p.interval_ms;
  }
  return next;
}

Thread& Scheduler::GetThread(const std::string& channel,
                             const std::string& host) {
  ThreadKey key{channel, host};
  auto it = threads_.find(key);
  if (it != threads_.end()) return it->second;
  Thread& t = threads_[key];
  t.channel = channel;
  t.host = host;
  ResolveThread(t);
  return t;
}

void Scheduler::ResolveThread(Thread& t) {
  t.params = conf_.Resolve(t.channel, t.host);
  t.next_due_ms = 0;  // look again
  t.command.clear();
  t.command_error.clear();
  if (t.params.command.empty()) {
    t.command_error = StrCat("no scheduler.conf clause with a command for ",
                             t.channel, "/", t.host);
    return;
  }
  auto c = ExpandCommand(t.params.command, t.channel, t.host, node_);
  if (!c.ok()) {
    t.command_error =
        StrCat("scheduler.conf command: ", zm::Message(c.status()));
  } else {
    t.command = *c;
  }
}

void Scheduler::ScanTransport() {
  last_scan_ms_ = NowMs();
  auto names = fs::ListDir(spool_.Path(spool::kTransport));
  if (!names.ok()) {
    log_.Error("",
               StrCat("cannot scan transport/: ", zm::Message(names.status())));
    return;
  }
  std::sort(names->begin(), names->end());  // ids sort by arrival
  for (const auto& n : *names) {
    if (!msgs_.count(n)) LoadMessage(n);
  }
}

void Scheduler::LoadMessage(const std::string& qid, bool arrived) {
  if (!mail::IsQueueId(qid) || msgs_.count(qid) || removing_.count(qid)) return;
  std::string cpath = spool_.Path(spool::kTransport, qid);
  auto text = fs::ReadFile(cpath, kMaxControlBytes);
  if (!text.ok()) {
    if (text.status().code() != absl::StatusCode::kNotFound) {
      log_.Error(qid, StrCat("cannot read control file: ",
                             zm::Message(text.status())));
    }
    return;
  }
  auto cf = mail::ParseControl(*text);
  if (!cf.ok() || cf->queue_id != qid) {
    std::string why = cf.ok() ? "queue id does not match the file name"
                              : zm::Message(cf.status());
    log_.Warning(
        qid, StrCat("malformed control file (", why, "), moved to postman/"));
    if (auto s = spool_.Quarantine(spool::kTransport, qid, "malformed");
        !s.ok()) {
      log_.Error(qid, StrCat("cannot quarantine: ", zm::Message(s)));
    }
    ++counters_.quarantined;
    return;
  }
  // Final results already in the file (last one wins).
  std::map<int, const mail::ControlResult*> results;
  for (const auto& r : cf->results) results[r.index] = &r;

  std::string qpath = spool_.Path(spool::kQueue, qid);
  fs::UniqueFd qfd(::open(qpath.c_str(), O_RDONLY | O_CLOEXEC));
  if (!qfd.valid()) {
    bool all_final = true;
    for (const auto& r : cf->recipients)
      all_final &= results.count(r.index) > 0;
    if (all_final) {
      // A crash between removing queue/<id> and transport/<id>.
      ::unlink(cpath.c_str());
      log_.Info(qid, "removed");
    } else {
      log_.Warning(
          qid, "control file without its message in queue/, moved to postman/");
      (void)spool_.Quarantine(spool::kTransport, qid, "nomessage");
      ++counters_.quarantined;
    }
    return;
  }
  auto m = std::make_unique<Message>();
  m->id = qid;
  m->seen_ms = Now();
  // Arrival time and size from the message file's envelope lines.
  struct stat st;
  if (::fstat(qfd.get(), &st) == 0) {
    m->arrival_ms = static_cast<int64_t>(st.st_mtime) * 1000;
    m->size = static_cast<uint64_t>(st.st_size) > cf->body_offset
                  ? static_cast<uint64_t>(st.st_size) - cf->body_offset
                  : 0;
  }
  std::string head(
      std::min<uint64_t>(std::max<uint64_t>(cf->body_offset, 1), kMaxHeadBytes),
      '\0');
  ssize_t got = ::pread(qfd.get(), head.data(), head.size(), 0);
  if (got > 0) {
    head.resize(static_cast<size_t>(got));
    for (std::string_view line : Split(head, '\n')) {
      std::string_view v = line;
      if (ConsumePrefix(&v, "arrival ")) {
        size_t dot = v.find('.');
        int64_t sec = 0;
        if (ParseNumber(v.substr(0, dot), &sec)) {
          int64_t ms = sec * 1000;
          if (dot != std::string_view::npos) {
            std::string frac(v.substr(dot + 1, 3));
            while (frac.size() < 3) frac += '0';
            int64_t f = 0;
            if (ParseNumber(std::string_view(frac), &f)) ms += f;
          }
          m->arrival_ms = ms;
        }
      } else if (ConsumePrefix(&v, "size ")) {
        uint64_t size = 0;
        if (ParseNumber(v, &size)) m->size = size;
      } else if (line == "env-end") {
        break;
      }
    }
  }
  m->cf = std::move(*cf);
  ++counters_.msgs_in;
  int64_t now = Now();
  for (const auto& r : m->cf.recipients) {
    Rcpt rc;
    rc.index = r.index;
    ++counters_.rcpts_in;
    auto it = results.find(r.index);
    if (it != results.end()) {
      rc.state = RcptState::kDone;
      rc.failed = it->second->status == mail::ResultStatus::kFailed;
      rc.last_dsn = it->second->dsn;
      rc.last_diag = it->second->diag;
      rc.result_time = it->second->time;
    } else {
      rc.next_ms = now;
      Thread& t = GetThread(r.channel, r.host);
      rc.thread = &t;
      Wake(t, now);
      t.msgs.insert(qid);
      next_check_ms_ = std::min(
          next_check_ms_,
          m->arrival_ms + std::min(t.params.expiry_ms, t.params.warning_ms > 0
                                                           ? t.params.warning_ms
                                                           : INT64_MAX));
    }
    m->rcpts.push_back(std::move(rc));
  }
  Message& ref = *m;
  if (!arrived) LoadRetryState(ref);
  msgs_[qid] = std::move(m);
  MaybeFinish(ref.id);
}

std::string Scheduler::ToAddress(const Message& m,
                                 const mail::ControlRecipient& r) const {
  if (r.user.find('@') != std::string::npos || r.user.empty() ||
      r.user[0] == '|' || r.user[0] == '/') {
    return r.user;
  }
  return StrCat(r.user, "@", hostname_);
}

void Scheduler::LogResult(const Message& m, int index,
                          std::string_view status_word, std::string_view dsn,
                          std::string_view relay, double c, double d,
                          std::string_view diag, int64_t dispatch_ms) {
  const auto& r = m.cf.recipients[static_cast<size_t>(index)];
  int64_t now = Now();
  double a = std::max<int64_t>(0, m.seen_ms - m.arrival_ms) / 1000.0;
  double b = dispatch_ms > 0
                 ? std::max<int64_t>(0, dispatch_ms - m.seen_ms) / 1000.0
                 : 0;
  double delay = std::max<int64_t>(0, now - m.arrival_ms) / 1000.0;
  std::string to = ToAddress(m, r);
  std::string line = StrCat("to=<", to, ">");
  if (!r.orig.empty() && r.orig != to)
    StrAppend(&line, ", orig_to=<", r.orig, ">");
  StrAppend(&line, ", relay=", relay.empty() ? "none" : relay,
            ", delay=", FormatDelay(delay), ", delays=", FormatDelay(a), "/",
            FormatDelay(b), "/", FormatDelay(c), "/", FormatDelay(d),
            ", dsn=", dsn.empty() ? "4.0.0" : dsn, ", status=", status_word,
            " (", diag, ")");
  log_.Info(m.id, line);
  Event(StrCat(m.id, ": ", line));
}

void Scheduler::ResultFor(Message& m, int index, std::string_view status,
                          std::string_view dsn, std::string_view relay,
                          double c, double d, std::string_view diag,
                          int64_t dispatch_ms) {
  if (index < 0 || static_cast<size_t>(index) >= m.rcpts.size()) return;
  Rcpt& rc = m.rcpts[static_cast<size_t>(index)];
  rc.relay = std::string(relay);
  if (status != "unreachable") {
    // The destination answered: its backlog is no longer held back (nor
    // counted as tried by MayExpire).
    const auto& r = m.cf.recipients[static_cast<size_t>(index)];
    GetThread(r.channel, r.host).hold_until_ms = 0;
  }
  if (status == "ok" || status == "error") {
    rc.state = RcptState::kDone;
    rc.failed = status == "error";
    rc.last_dsn = std::string(dsn);
    rc.last_diag = std::string(diag);
    rc.result_time = Now() / 1000;
    ++(rc.failed ? counters_.failed : counters_.delivered);
    metrics_.Outcome(m.cf.recipients[static_cast<size_t>(index)].channel,
                     rc.failed ? "bounced" : "delivered");
    LogResult(m, index, rc.failed ? "bounced" : "sent", dsn, relay, c, d, diag,
              dispatch_ms);
    return;
  }
  int64_t retry_at = 0;
  std::string_view st = status;
  if (ConsumePrefix(&st, "retryat=")) {
    int64_t t = 0;
    if (ParseNumber(st, &t)) retry_at = t * 1000;
  }
  LogResult(m, index, "deferred", dsn, relay, c, d, diag, dispatch_ms);
  Defer(m, index, dsn, diag, retry_at);
  if (status == "unreachable" && rc.state == RcptState::kWaiting) {
    // The destination, not this recipient, failed: the thread's backlog
    // is not tried (nor counted as tried) before this one's next attempt.
    const auto& r = m.cf.recipients[static_cast<size_t>(index)];
    Thread& t = GetThread(r.channel, r.host);
    if (rc.next_ms > t.hold_until_ms) {
      t.hold_until_ms = rc.next_ms;
      log_.Info(m.id,
                StrCat(r.channel, "/", r.host,
                       " unreachable: its other messages wait ",
                       admin::FormatDuration((rc.next_ms - Now()) / 1000)));
    }
  }
}

void Scheduler::Defer(Message& m, int index, std::string_view dsn,
                      std::string_view diag, int64_t retry_at_ms) {
  Rcpt& rc = m.rcpts[static_cast<size_t>(index)];
  const auto& r = m.cf.recipients[static_cast<size_t>(index)];
  Thread& t = GetThread(r.channel, r.host);
  rc.state = RcptState::kWaiting;
  rc.attempts++;
  rc.last_dsn = std::string(dsn);
  rc.last_diag = std::string(diag);
  t.attempts++;
  t.last_diag = rc.last_diag;
  ++counters_.deferred;
  metrics_.Outcome(r.channel, "deferred");
  int64_t now = Now();
  rc.result_time = now / 1000;
  rc.next_ms =
      std::max(retry_at_ms, NextAttemptMs(t.params, rc.attempts, now, &rng_));
  Wake(t, rc.next_ms);
  retry_dirty_.insert(m.id);
  next_check_ms_ = std::min(next_check_ms_, m.arrival_ms + t.params.expiry_ms);
  if (t.params.warning_ms > 0) {
    next_check_ms_ =
        std::min(next_check_ms_, m.arrival_ms + t.params.warning_ms);
  }
  if (now - m.arrival_ms >= t.params.expiry_ms) FailExpired(m, index);
}

void Scheduler::FailExpired(Message& m, int index) {
  Rcpt& rc = m.rcpts[static_cast<size_t>(index)];
  mail::ControlResult res;
  res.index = index;
  res.status = mail::ResultStatus::kFailed;
  res.time = Now() / 1000;
  res.dsn = "4.4.7";
  const auto& r = m.cf.recipients[static_cast<size_t>(index)];
  const std::string& why = Diagnostic(GetThread(r.channel, r.host), rc);
  res.diag = why.empty() ? "expired" : StrCat("expired: ", why);
  std::string cpath = spool_.Path(spool::kTransport, m.id);
  fs::UniqueFd fd(::open(cpath.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC));
  if (!fd.valid() ||
      !fs::WriteAll(fd.get(), mail::SerializeResult(res), cpath).ok()) {
    log_.Error(m.id, StrCat("cannot append the expiry result to ", cpath));
    return;  // try again at the next check
  }
  (void)fs::Fsync(fd.get(), cpath);
  rc.state = RcptState::kDone;
  rc.failed = true;
  rc.last_dsn = res.dsn;
  rc.last_diag = res.diag;
  rc.result_time = res.time;
  ++counters_.expired;
  metrics_.Outcome(m.cf.recipients[static_cast<size_t>(index)].channel,
                   "expired");
  LogResult(m, index, "expired", res.dsn, rc.relay.empty() ? "none" : rc.relay,
            0, 0, res.diag, 0);
}

namespace {

// Whether recipient rc of m (in thread t) may expire now if old enough: it
// was tried at least once, or its thread only runs on ETRN.
// A recipient held back, untried, because its destination was unreachable
// (Thread::hold_until_ms) counts as tried.
bool MayExpire(const Thread& t, const Rcpt& rc) {
  return rc.state == RcptState::kWaiting &&
         (rc.attempts > 0 || t.params.queueonly || t.hold_until_ms > 0);
}

// Whether a delay DSN is due for rc once the message is old enough.
bool MayWarn(const Message& m, const Thread& t, const Rcpt& rc) {
  const auto& r = m.cf.recipients[static_cast<size_t>(rc.index)];
  return t.params.warning_ms > 0 && !rc.warned && MayExpire(t, rc) &&
         !m.cf.sender.empty() && !m.cf.error_to.empty() &&
         WantsDelayDsn(r.notify);
}

}  // namespace

void Scheduler::CheckExpiry() {
  int64_t now = Now();
  if (now < next_check_ms_) return;
  int64_t next = INT64_MAX;
  std::vector<std::string> touched;
  for (auto& [qid, m] : msgs_) {
    bool any = false;
    for (auto& rc : m->rcpts) {
      if (rc.state != RcptState::kWaiting) continue;
      const auto& r = m->cf.recipients[static_cast<size_t>(rc.index)];
      const Thread& t = GetThread(r.channel, r.host);
      if (!MayExpire(t, rc)) continue;
      int64_t expires = m->arrival_ms + t.params.expiry_ms;
      if (now >= expires) {
        FailExpired(*m, rc.index);
        any = true;
        continue;
      }
      next = std::min(next, expires);
      if (MayWarn(*m, t, rc)) {
        next = std::min(next, m->arrival_ms + t.params.warning_ms);
      }
    }
    MaybeWarnDelay(*m);
    if (any) touched.push_back(qid);
  }
  next_check_ms_ = next;
  for (const auto& q : touched) MaybeFinish(q);
}

void Scheduler::MaybeWarnDelay(Message& m) {
  int64_t now = Now();
  std::vector<DsnRecipient> report;
  for (auto& rc : m.rcpts) {
    if (rc.state == RcptState::kDone) continue;  // its thread may be gone
    const auto& r = m.cf.recipients[static_cast<size_t>(rc.index)];
    const Thread& t = GetThread(r.channel, r.host);
    if (!MayWarn(m, t, rc) || now - m.arrival_ms < t.params.warning_ms)
      continue;
    DsnRecipient d;
    d.final_recipient = ToAddress(m, r);
    d.original_recipient = r.orcpt;
    d.action = "delayed";
    d.status = rc.last_dsn.rfind("4.", 0) == 0 ? rc.last_dsn : "4.0.0";
    d.diagnostic = Diagnostic(t, rc);
    d.remote_mta = rc.relay;
    d.last_attempt = rc.result_time;
    d.will_retry_until = (m.arrival_ms + t.params.expiry_ms) / 1000;
    report.push_back(std::move(d));
    rc.warned = true;
  }
  if (report.empty()) return;
  retry_dirty_.insert(m.id);
  if (SubmitDsn(m, std::move(report), true, m.cf.error_to, "")) {
    ++counters_.delay_dsns;
  }
}

bool Scheduler::SubmitDsn(Message& m, std::vector<DsnRecipient> report,
                          bool delay, const std::string& to,
                          const std::string& sender) {
  std::string qpath = spool_.Path(spool::kQueue, m.id);
  auto text = fs::ReadFile(qpath, kMaxDsnOriginalBytes + (1u << 20));
  std::string original;
  if (text.ok() && text->size() >= m.cf.body_offset) {
    original = text->substr(m.cf.body_offset);
  }
  DsnRequest req;
  req.queue_id = m.id;
  req.hostname = hostname_;
  req.original_sender = to;
  req.envid = m.cf.envid;
  req.ret = delay ? "HDRS" : m.cf.ret;  // delay reports: headers only
  req.arrival = m.arrival_ms / 1000;
  req.now = Now() / 1000;
  req.recipients = std::move(report);
  req.original = original;
  std::string dsn = RenderDsn(req);
  mail::Envelope env;
  env.sender = sender;
  env.recipients.push_back({to, "NEVER", ""});
  env.protocol = "local";
  env.arrival_usec = NowMs() * 1000;
  env.local_user = "MAILER-DAEMON";
  absl::Status s;
  auto sub = spool_.Begin(env);
  if (!sub.ok()) {
    s = sub.status();
  } else {
    s = (*sub)->Append(dsn);
    if (s.ok()) s = (*sub)->Commit();
  }
  if (!s.ok()) {
    log_.Error(m.id,
               StrCat("cannot write the DSN, message kept: ", zm::Message(s)));
    return false;
  }
  ++counters_.dsns;
  std::string line =
      StrCat("sender ", delay ? "delay" : "non-delivery",
             " notification: ", (*sub)->queue_id(), " to=<", to, ">");
  log_.Info(m.id, line);
  Event(StrCat(m.id, ": ", line));
  return true;
}

void Scheduler::MaybeFinish(const std::string& qid) {
  auto it = msgs_.find(qid);
  if (it == msgs_.end()) return;
  const Message& m = *it->second;
  // The threads where it has a recipient not yet final keep it; the others
  // let it go (called after loops over thread msgs, never inside one).
  std::set<ThreadKey> open, done;
  for (const auto& rc : m.rcpts) {
    const auto& r = m.cf.recipients[static_cast<size_t>(rc.index)];
    (rc.state == RcptState::kDone ? done : open)
        .insert(ThreadKey{r.channel, r.host});
  }
  if (open.empty()) {
    FinishMessage(*it->second);
    return;
  }
  for (const auto& key : done) {
    if (open.count(key)) continue;
    if (auto t = threads_.find(key); t != threads_.end())
      t->second.msgs.erase(qid);
  }
}

void Scheduler::FinishMessage(Message& m) {
  const std::string qid = m.id;
  std::string qpath = spool_.Path(spool::kQueue, qid);
  std::string cpath = spool_.Path(spool::kTransport, qid);
  bool any_failed = false;
  bool null_sender = m.cf.sender.empty();
  std::vector<DsnRecipient> report;
  for (const auto& rc : m.rcpts) {
    const auto& r = m.cf.recipients[static_cast<size_t>(rc.index)];
    if (rc.killed) continue;  // deleted by the administrator: no report
    any_failed |= rc.failed;
    // A failed bounce is reported to the postmaster whatever its NOTIFY.
    if (null_sender ? !rc.failed : !WantsDsn(r.notify, rc.failed)) continue;
    // hold released it to the router: the new message reports delivery.
    if (!rc.failed && r.channel == "hold") continue;
    DsnRecipient d;
    d.final_recipient = ToAddress(m, r);
    d.original_recipient = r.orcpt;
    d.action = rc.failed ? "failed" : "delivered";
    d.status =
        rc.last_dsn.empty() ? (rc.failed ? "5.0.0" : "2.0.0") : rc.last_dsn;
    d.diagnostic = rc.last_diag;
    d.remote_mta = rc.relay;
    d.last_attempt = rc.result_time;
    report.push_back(std::move(d));
  }
  bool moved_to_postman = false;
  if (any_failed && EqualsIgnoreCase(m.cf.sender, DoubleBounceSender())) {
    // Our report about a failed bounce failed too: keep it, send nothing.
    if (auto s = spool_.Quarantine(spool::kQueue, qid, "double-bounce");
        !s.ok()) {
      log_.Error(qid,
                 StrCat("cannot keep the double bounce: ", zm::Message(s)));
      return;  // keep everything; tried again on the next scan
    }
    log_.Warning(qid,
                 "undeliverable postmaster notification, copy kept in "
                 "postman/");
    moved_to_postman = true;
  } else if (any_failed && null_sender) {
    // A bounce that bounced: the postmaster hears about it, once (the
    // report's sender is double-bounce@, whose failures are only kept).
    if (!SubmitDsn(m, std::move(report), false,
                   StrCat("postmaster@", hostname_), DoubleBounceSender())) {
      return;
    }
  } else if (!report.empty() && !m.cf.error_to.empty() && !null_sender) {
    if (!SubmitDsn(m, std::move(report), false, m.cf.error_to, "")) return;
  }
  // The files go on the remover's thread (queue/ first, then transport/
  // and retry/); `removed` is logged when it reports them gone (Removed()).
  remover_.Add({qid, moved_to_postman ? std::string() : qpath, cpath,
                m.retry_file ? spool_.Path(kRetryFolder, qid) : std::string()});
  removing_.insert(qid);
  retry_dirty_.erase(qid);
  ++counters_.msgs_out;
  counters_.rcpts_out += m.rcpts.size();
  std::set<ThreadKey> left;
  for (const auto& rc : m.rcpts) {
    const auto& r = m.cf.recipients[static_cast<size_t>(rc.index)];
    if (!left.insert(ThreadKey{r.channel, r.host}).second) continue;
    auto t = threads_.find(ThreadKey{r.channel, r.host});
    if (t == threads_.end()) continue;
    t->second.msgs.erase(qid);
  }
  msgs_.erase(qid);
  // Empty threads are removed by the loop's tick, not here: callers may
  // be iterating over threads_.
}

void Scheduler::Removed() {
  for (const Remover::Done& d : remover_.TakeDone()) {
    if (!d.ok) continue;  // logged by the remover; stays in removing_
    removing_.erase(d.qid);
    log_.Info(d.qid, "removed");
    Event(StrCat(d.qid, ": removed"));
  }
}

std::string SerializeRetry(const std::vector<RetryRecord>& records) {
  std::string out;
  for (const auto& r : records) {
    StrAppend(&out, r.index, " ", r.attempts, " ", r.next_ms, " ",
              r.warned ? 1 : 0, " ", r.dsn.empty() ? "-" : r.dsn, " ",
              mail::XtextEncode(r.diag.empty() ? "-" : r.diag), "\n");
  }
  return out;
}

std::vector<RetryRecord> ParseRetry(std::string_view text) {
  std::vector<RetryRecord> out;
  for (std::string_view line : Split(text, '\n')) {
    std::vector<std::string_view> f = SplitWhitespace(line);
    RetryRecord r;
    int warned = 0;
    if (f.size() != 6 || !ParseNumber(f[0], &r.index) ||
        !ParseNumber(f[1], &r.attempts) || !ParseNumber(f[2], &r.next_ms) ||
        !ParseNumber(f[3], &warned)) {
      continue;  // a torn or foreign line: that recipient is simply due
    }
    r.warned = warned != 0;
    if (f[4] != "-") r.dsn = std::string(f[4]);
    if (auto d = mail::XtextDecode(f[5]); d.ok() && *d != "-") r.diag = *d;
    out.push_back(std::move(r));
  }
  return out;
}

void Scheduler::LoadRetryState(Message& m) {
  auto text = fs::ReadFile(spool_.Path(kRetryFolder, m.id), 1u << 20);
  if (!text.ok()) return;
  m.retry_file = true;
  for (const auto& rec : ParseRetry(*text)) {
    if (rec.index < 0 || static_cast<size_t>(rec.index) >= m.rcpts.size())
      continue;
    Rcpt& rc = m.rcpts[static_cast<size_t>(rec.index)];
    if (rc.state != RcptState::kWaiting) continue;
    rc.attempts = rec.attempts;
    rc.next_ms = rec.next_ms;
    rc.warned = rec.warned;
    rc.last_dsn = rec.dsn;
    rc.last_diag = rec.diag;
  }
}

void Scheduler::SaveRetryState() {
  std::string dir = spool_.Path(kRetryFolder);
  for (const auto& qid : retry_dirty_) {
    auto it = msgs_.find(qid);
    if (it == msgs_.end()) continue;
    std::vector<RetryRecord> recs;
    for (const auto& rc : it->second->rcpts) {
      if (rc.state == RcptState::kDone || (rc.attempts == 0 && !rc.warned))
        continue;
      recs.push_back({rc.index, rc.attempts, rc.next_ms, rc.warned, rc.last_dsn,
                      rc.last_diag});
    }
    std::string path = StrCat(dir, "/", qid);
    if (recs.empty()) {
      if (it->second->retry_file) ::unlink(path.c_str());
      it->second->retry_file = false;
      continue;
    }
    it->second->retry_file = true;  // before the write: a torn one counts
    // Not synced: after a power loss a recipient is at worst tried early.
    std::string tmp = StrCat(dir, "/.", qid, ".tmp");
    fs::UniqueFd fd(
        ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640));
    if (!fd.valid() ||
        !fs::WriteAll(fd.get(), SerializeRetry(recs), tmp).ok() ||
        ::rename(tmp.c_str(), path.c_str()) != 0) {
      log_.Warning(qid, StrCat("cannot save the retry state in ", path));
      ::unlink(tmp.c_str());
    }
  }
  retry_dirty_.clear();
}

void Scheduler::Reload() {
  auto conf = LoadSchedulerConf(node_);
  if (!conf.ok()) {
    log_.Error("", StrCat("reload refused, keeping the old configuration: ",
                          zm::Message(conf.status())));
    return;
  }
  auto tls = LoadGrpcTls(*conf);
  if (!tls.ok()) {
    log_.Error("", StrCat("reload refused, keeping the old configuration: ",
                          zm::Message(tls.status())));
    return;
  }
  conf_ = std::move(*conf);
  ReopenAdminGrpc(std::move(*tls));
  for (auto& [key, t] : threads_) ResolveThread(t);
  next_check_ms_ = 0;
  if (auto s = LoadAuth(); !s.ok())
    log_.Error("", StrCat("scheduler.auth not reloaded: ", zm::Message(s)));
  log_.Info("", "configuration reloaded");
}

int Scheduler::Etrn(std::string_view domain) {
  int n = 0;
  int64_t now = Now();
  for (auto& [key, t] : threads_) {
    if (!EqualsIgnoreCase(t.host, domain)) continue;
    t.kicked = true;
    t.hold_until_ms = 0;
    for (const auto& qid : t.msgs) {
      auto it = msgs_.find(qid);
      if (it == msgs_.end()) continue;
      for (auto& rc : it->second->rcpts) {
        const auto& r =
            it->second->cf.recipients[static_cast<size_t>(rc.index)];
        if (rc.state == RcptState::kWaiting && r.channel == t.channel &&
            r.host == t.host) {
          rc.next_ms = now;
          ++n;
        }
        Wake(t, now);
      }
    }
  }
  return n;
}

int Scheduler::RunQueue(std::string_view qid) {
  int n = 0;
  int64_t now = Now();
  for (auto& [id, m] : msgs_) {
    if (!qid.empty() && id != qid) continue;
    for (auto& rc : m->rcpts) {
      if (rc.state != RcptState::kWaiting) continue;
      const auto& r = m->cf.recipients[static_cast<size_t>(rc.index)];
      Thread& t = GetThread(r.channel, r.host);
      if (t.params.queueonly && qid.empty()) continue;  // those wait for ETRN
      if (t.params.queueonly) t.kicked = true;
      t.hold_until_ms = 0;
      rc.next_ms = now;
      Wake(t, now);
      ++n;
    }
  }
  return n;
}

void Scheduler::FailByAdmin(Message& m, Rcpt& rc) {
  mail::ControlResult res;
  res.index = rc.index;
  res.status = mail::ResultStatus::kFailed;
  res.time = Now() / 1000;
  res.dsn = "5.0.0";
  res.diag = "deleted by the administrator";
  std::string cpath = spool_.Path(spool::kTransport, m.id);
  fs::UniqueFd fd(::open(cpath.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC));
  if (fd.valid())
    (void)fs::WriteAll(fd.get(), mail::SerializeResult(res), cpath);
  rc.state = RcptState::kDone;
  rc.failed = true;
  rc.killed = true;
  rc.last_dsn = res.dsn;
  rc.last_diag = res.diag;
  rc.result_time = res.time;
}

absl::Status Scheduler::Kill(std::string_view qid) {
  auto it = msgs_.find(std::string(qid));
  if (it == msgs_.end()) return absl::NotFoundError(StrCat("no message ", qid));
  Message& m = *it->second;
  for (auto& rc : m.rcpts) {
    if (rc.state == RcptState::kWaiting) FailByAdmin(m, rc);
  }
  log_.Info(m.id, "deleted by the administrator (KILL MSG)");
  MaybeFinish(m.id);  // recipients in flight finish first
  return absl::OkStatus();
}

int Scheduler::KillThread(std::string_view channel, std::string_view host) {
  auto ti = threads_.find(ThreadKey{std::string(channel), std::string(host)});
  if (ti == threads_.end()) return 0;
  int n = 0;
  std::vector<std::string> qids(ti->second.msgs.begin(), ti->second.msgs.end());
  for (const auto& qid : qids) {
    auto it = msgs_.find(qid);
    if (it == msgs_.end()) continue;
    Message& m = *it->second;
    for (auto& rc : m.rcpts) {
      const auto& r = m.cf.recipients[static_cast<size_t>(rc.index)];
      if (rc.state != RcptState::kWaiting || r.channel != channel ||
          r.host != host) {
        continue;
      }
      FailByAdmin(m, rc);
      ++n;
    }
    log_.Info(qid, StrCat("recipients for ", channel, "/", host,
                          " deleted by the administrator (KILL THREAD)"));
  }
  for (const auto& qid : qids) MaybeFinish(qid);
  return n;
}

}  // namespace zm::scheduler
