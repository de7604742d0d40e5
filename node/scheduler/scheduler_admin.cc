// The MAILQv2 admin server (docs/admin-protocol.md).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "node/admin/admin_render.h"
#include "node/common/strings.h"
#include "node/mail/queue_id.h"
#include "node/scheduler/scheduler.h"

namespace zm::scheduler {
namespace {

constexpr size_t kMaxAdminLine = 4096;
constexpr size_t kMaxAdminConns = 64;
constexpr size_t kMaxEventBacklog = 1u << 20;
constexpr char kDefaultAuth[] =
    "nobody:nobody:SNMP QQ TT ETRN:[ipv6:::1]/128,[127.0.0.1]/32\n";

std::string RandomChallenge(const std::string& host) {
  unsigned char b[12] = {};
  fs::UniqueFd fd(::open("/dev/urandom", O_RDONLY | O_CLOEXEC));
  if (!fd.valid() ||
      ::read(fd.get(), b, sizeof b) != static_cast<ssize_t>(sizeof b)) {
    uint64_t t = static_cast<uint64_t>(NowMs()) ^
                 (static_cast<uint64_t>(::getpid()) << 32);
    std::memcpy(b, &t, sizeof t);
  }
  std::string hex;
  for (unsigned char c : b) hex += fmt::format("{:02x}", c);
  return StrCat("<", hex, ".", ::getpid(), "@", host, ">");
}

// "... channel host" or "... channel/host" from word 2 on.
std::pair<std::string_view, std::string_view> ThreadArgs(
    const std::vector<std::string_view>& w) {
  std::string_view ch = w[2], host;
  if (w.size() == 4) {
    host = w[3];
  } else if (size_t slash = ch.find('/'); slash != std::string_view::npos) {
    host = ch.substr(slash + 1);
    ch = ch.substr(0, slash);
  }
  return {ch, host};
}

}  // namespace

absl::Status Scheduler::LoadAuth() {
  if (!conf_.authfile.empty() && fs::Exists(conf_.authfile)) {
    auto a = admin::LoadSchedulerAuth(conf_.authfile);
    if (!a.ok()) return a.status();
    auth_ = std::move(*a);
    return absl::OkStatus();
  }
  if (!conf_.authfile.empty()) {
    log_.Warning("", StrCat(conf_.authfile,
                            " does not exist; admin logins: nobody/nobody "
                            "from this host only"));
  }
  auth_ = *admin::ParseSchedulerAuth(kDefaultAuth, "(built-in scheduler.auth)");
  return absl::OkStatus();
}

absl::Status Scheduler::OpenAdmin() {
  std::string_view spec = conf_.mailsock;
  if (StartsWithIgnoreCase(spec, "UNIX:")) {
    unix_path_ = std::string(spec.substr(5));
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (unix_path_.size() >= sizeof sa.sun_path) {
      return absl::InvalidArgumentError(
          StrCat("admin socket path too long: ", unix_path_));
    }
    std::memcpy(sa.sun_path, unix_path_.c_str(), unix_path_.size() + 1);
    unix_listen_.reset(
        ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!unix_listen_.valid())
      return fs::ErrnoStatus("socket", unix_path_, errno);
    ::unlink(unix_path_.c_str());  // a stale socket of a dead scheduler
    if (::bind(unix_listen_.get(), reinterpret_cast<sockaddr*>(&sa),
               sizeof sa) != 0) {
      return fs::ErrnoStatus("bind", unix_path_, errno);
    }
    ::chmod(unix_path_.c_str(),
            0666);  // scheduler.auth decides who may do what
    if (::listen(unix_listen_.get(), 16) != 0) {
      return fs::ErrnoStatus("listen", unix_path_, errno);
    }
  } else {
    std::string rest(spec.substr(4));
    size_t colon = rest.rfind(':');
    std::string host =
        colon == std::string::npos ? "127.0.0.1" : rest.substr(0, colon);
    std::string port_s =
        colon == std::string::npos ? rest : rest.substr(colon + 1);
    int port = 0;
    if (!ParseNumber(port_s, &port) || port <= 0 || port > 65535) {
      return absl::InvalidArgumentError(
          StrCat("bad PARAMmailsock port in ", spec));
    }
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(port));
    if (::inet_pton(AF_INET, host.c_str(), &sa.sin_addr) != 1) {
      return absl::InvalidArgumentError(
          StrCat("bad PARAMmailsock address in ", spec));
    }
    tcp_listen_.reset(
        ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    int one = 1;
    ::setsockopt(tcp_listen_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(tcp_listen_.get(), reinterpret_cast<sockaddr*>(&sa),
               sizeof sa) != 0) {
      return fs::ErrnoStatus("bind", spec, errno);
    }
    if (::listen(tcp_listen_.get(), 16) != 0)
      return fs::ErrnoStatus("listen", spec, errno);
  }
  return absl::OkStatus();
}

void Scheduler::AcceptAdmin(int listen_fd, bool is_unix) {
  while (true) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&ss), &len,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    if (admin_.size() >= kMaxAdminConns) {
      ::close(fd);
      continue;
    }
    auto c = std::make_unique<AdminConn>();
    c->fd.reset(fd);
    c->last_ms = NowMs();
    if (is_unix) {
      c->peer = admin::PeerAddress::Local();
    } else {
      char buf[INET6_ADDRSTRLEN] = {};
      if (ss.ss_family == AF_INET) {
        ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr,
                    buf, sizeof buf);
      } else {
        ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr,
                    buf, sizeof buf);
      }
      c->peer = admin::PeerAddress::Parse(buf).value_or(admin::PeerAddress{});
    }
    c->challenge = RandomChallenge(hostname_);
    c->outbuf = StrCat("version zmailer 2.0 ", c->challenge, "\n");
    FlushAdmin(*c);
    admin_.push_back(std::move(c));
  }
}

void Scheduler::FlushAdmin(AdminConn& c) {
  while (!c.outbuf.empty()) {
    ssize_t n =
        ::send(c.fd.get(), c.outbuf.data(), c.outbuf.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) {
        c.outbuf.clear();
        c.closing = true;
      }
      return;
    }
    c.outbuf.erase(0, static_cast<size_t>(n));
  }
}

void Scheduler::ReadAdmin(AdminConn& c) {
  char buf[4096];
  ssize_t n = ::read(c.fd.get(), buf, sizeof buf);
  if (n <= 0) {
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    c.closing = true;
    c.outbuf.clear();
    return;
  }
  c.last_ms = NowMs();
  c.inbuf.append(buf, static_cast<size_t>(n));
  size_t nl;
  while (!c.closing && (nl = c.inbuf.find('\n')) != std::string::npos) {
    std::string line = c.inbuf.substr(0, nl);
    c.inbuf.erase(0, nl + 1);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    AdminLine(c, line);
  }
  if (c.inbuf.size() > kMaxAdminLine) {
    c.outbuf += "- line too long\n";
    c.closing = true;
  }
  FlushAdmin(c);
}

void Scheduler::AdminLine(AdminConn& c, std::string_view line) {
  std::vector<std::string_view> w = SplitWhitespace(line);
  auto reply = [&](const std::vector<std::string>& lines) {
    c.outbuf += "+ OK\n";
    for (const auto& l : lines) {
      if (!l.empty() && l[0] == '.') c.outbuf += ".";
      c.outbuf += l;
      c.outbuf += "\n";
    }
    c.outbuf += ".\n";
  };
  auto refuse = [&](std::string_view why) {
    StrAppend(&c.outbuf, "- ", why, "\n");
  };
  if (!c.authed) {
    if (w.size() == 3 && EqualsIgnoreCase(w[0], "AUTH")) {
      const admin::AuthEntry* e = auth_.Find(w[1], c.peer);
      if (e && admin::Md5Hex(c.challenge + e->password) == ToLower(w[2])) {
        c.authed = true;
        c.tokens = e->tokens;
        c.outbuf += "+ OK\n";
        return;
      }
      log_.Warning("", StrCat("admin login refused for user '", w[1], "'"));
    }
    refuse("authentication refused");
    c.closing = true;
    return;
  }
  if (w.empty()) {
    refuse("empty command");
    return;
  }
  uint32_t need = admin::RequiredToken(line);
  if (need != 0 && (c.tokens & need) != need) {
    refuse("not permitted for this user");
    return;
  }
  std::string verb = ToLower(w[0]);
  std::string what = w.size() > 1 ? ToLower(w[1]) : "";
  auto action = [&](const absl::StatusOr<admin::pb::ActionReply>& r) {
    if (r.ok()) {
      reply({r->text()});
    } else {
      refuse(zm::Message(r.status()));
    }
  };
  if (verb == "quit") {
    reply({});
    c.closing = true;
  } else if (verb == "show" && what == "queue" && w.size() == 3 &&
             EqualsIgnoreCase(w[2], "threads")) {
    reply(admin::QueueThreadsLines(QueueThreadsView()));
  } else if (verb == "show" && what == "queue" && w.size() == 3 &&
             EqualsIgnoreCase(w[2], "short")) {
    reply(admin::QueueShortLines(QueueSummaryView()));
  } else if (verb == "show" && what == "thread" &&
             (w.size() == 4 || w.size() == 3)) {
    auto [ch, host] = ThreadArgs(w);
    reply(admin::ThreadLines(ThreadView(ch, host)));
  } else if (verb == "show" && (what == "snmp" || what == "counters") &&
             w.size() == 2) {
    reply(admin::CounterLines(CountersView()));
  } else if (verb == "show" && what == "messages" && w.size() == 2) {
    std::vector<std::string> lines;
    for (const auto& m : MessagesView("", "")) {
      lines.push_back(admin::MessageJson(m));
    }
    reply(lines);
  } else if (verb == "etrn" && w.size() == 2) {
    action(EtrnAction(w[1]));
  } else if (verb == "runq" && w.size() == 1) {
    action(RunQueueAction(""));
  } else if (verb == "runq" && w.size() == 3 && EqualsIgnoreCase(w[1], "ID")) {
    action(RunQueueAction(w[2]));
  } else if (verb == "kill" && what == "thread" &&
             (w.size() == 4 || w.size() == 3)) {
    auto [ch, host] = ThreadArgs(w);
    action(KillThreadAction(ch, host));
  } else if (verb == "watch" && what == "events" && w.size() == 2) {
    c.outbuf += "+ OK\n";
    c.events = true;  // event lines follow until the client closes
  } else if (verb == "clock" && what == "advance" && w.size() == 3 &&
             test_clock_) {
    int64_t secs = 0;
    if (!ParseNumber(w[2], &secs) || secs < 0) {
      refuse("CLOCK ADVANCE seconds");
    } else {
      clock_offset_ms_ += secs * 1000;
      reply({StrCat("clock advanced by ", secs, "s")});
    }
  } else if (verb == "kill" && what == "msg" && w.size() == 3) {
    action(KillMessageAction(w[2]));
  } else {
    refuse(StrCat("unknown command: ", line.substr(0, 80)));
  }
}

admin::pb::ActionReply Scheduler::EtrnAction(std::string_view domain) {
  int n = Etrn(domain);
  log_.Info("", StrCat("ETRN ", domain, ": ", n, " recipients"));
  admin::pb::ActionReply r;
  r.set_recipients(n);
  r.set_text(n > 0 ? StrCat("ETRN ", domain, ": ", n,
                            " recipients scheduled for delivery")
                   : StrCat("ETRN ", domain, ": nothing queued"));
  return r;
}

absl::StatusOr<admin::pb::ActionReply> Scheduler::RunQueueAction(
    std::string_view qid) {
  admin::pb::ActionReply r;
  if (qid.empty()) {
    r.set_recipients(RunQueue(""));
    r.set_text(StrCat("RUNQ: ", r.recipients(), " recipients scheduled"));
    return r;
  }
  if (!mail::IsQueueId(qid) || !msgs_.count(std::string(qid))) {
    return absl::NotFoundError(StrCat("no message ", qid, " in the queue"));
  }
  r.set_recipients(RunQueue(qid));
  r.set_text(StrCat("RUNQ ID ", qid, ": ", r.recipients(),
                    " recipients scheduled"));
  return r;
}

admin::pb::ActionReply Scheduler::KillThreadAction(std::string_view ch,
                                                   std::string_view host) {
  int n = KillThread(ch, host);
  log_.Info("", StrCat("KILL THREAD ", ch, "/", host, ": ", n,
                       " recipients deleted"));
  admin::pb::ActionReply r;
  r.set_recipients(n);
  r.set_text(StrCat("thread ", ch, "/", host, ": ", n, " recipients deleted"));
  return r;
}

absl::StatusOr<admin::pb::ActionReply> Scheduler::KillMessageAction(
    std::string_view qid) {
  auto it = mail::IsQueueId(qid) ? msgs_.find(std::string(qid)) : msgs_.end();
  int64_t waiting = 0;
  if (it != msgs_.end()) {
    for (const auto& rc : it->second->rcpts)
      waiting += rc.state == RcptState::kWaiting;
  }
  if (auto s = Kill(qid); !s.ok()) return s;
  admin::pb::ActionReply r;
  r.set_recipients(waiting);
  r.set_text(StrCat("message ", qid, " deleted"));
  return r;
}

admin::pb::QueueThreads Scheduler::QueueThreadsView() const {
  admin::pb::QueueThreads out;
  int64_t now = Now();
  // One pass over the queue (not one per thread): per-thread figures and
  // per-ring message counts.
  struct Stats {
    int64_t rcpts = 0;
    int attempts = 0;
    int64_t next = 0, oldest = INT64_MAX;
    const Message* last = nullptr;
  };
  std::unordered_map<const Thread*, Stats> stats;
  stats.reserve(threads_.size());
  std::map<int, std::pair<const Message*, int64_t>> ring_msgs;
  for (const auto& [qid, mp] : msgs_) {
    const Message& m = *mp;
    for (const auto& rc : m.rcpts) {
      if (rc.state == RcptState::kDone || rc.thread == nullptr) continue;
      Stats& st = stats[rc.thread];
      ++st.rcpts;
      st.attempts = std::max(st.attempts, rc.attempts);
      if (rc.state == RcptState::kWaiting &&
          (st.next == 0 || rc.next_ms < st.next)) {
        st.next = rc.next_ms;
      }
      if (st.last != &m) {
        st.last = &m;
        st.oldest = std::min(st.oldest, m.arrival_ms);
      }
      auto& rm = ring_msgs[rc.thread->params.ring];
      if (rm.first != &m) {
        rm.first = &m;
        ++rm.second;
      }
    }
  }
  // Group threads by ring (the clause that gave their command).
  std::map<int, std::vector<const Thread*>> rings;
  for (const auto& [key, t] : threads_) {
    if (!t.msgs.empty()) rings[t.params.ring].push_back(&t);
  }
  for (const auto& [ring, threads] : rings) {
    int procs = 0, idle = 0;
    for (const auto& a : agents_) {
      if (a->ring != ring || a->eof) continue;
      ++procs;
      if (a->jobs.empty()) ++idle;
    }
    const ThreadParams& p = threads.front()->params;
    admin::pb::Ring* r = out.add_rings();
    r->set_name(ring < 0 ? "(no command)" : p.ring_name);
    r->set_procs(procs);
    r->set_idle(idle);
    r->set_messages(ring_msgs[ring].second);
    r->set_plim(p.maxring);
    r->set_flim(p.maxchannel);
    r->set_tlim(conf_.EffectiveMaxTa());
    for (const Thread* t : threads) {
      auto si = stats.find(t);
      Stats st = si == stats.end() ? Stats{} : si->second;
      if (st.oldest == INT64_MAX) st.oldest = now;
      admin::pb::Thread* x = r->add_threads();
      x->set_channel(t->channel);
      x->set_host(t->host);
      x->set_procs(procs);
      x->set_recipients(st.rcpts);
      x->set_attempts(st.attempts);
      if (st.next > now) x->set_wait_s((st.next - now) / 1000);
      x->set_queueonly(t->params.queueonly);
      x->set_age_s((now - st.oldest) / 1000);
    }
  }
  *out.mutable_summary() = QueueSummaryView();
  return out;
}

admin::pb::QueueSummary Scheduler::QueueSummaryView() const {
  admin::pb::QueueSummary s;
  int kids = 0, idle = 0;
  for (const auto& a : agents_) {
    if (a->eof) continue;
    ++kids;
    if (a->jobs.empty()) ++idle;
  }
  int64_t rcpts = 0, threads = 0;
  for (const auto& [qid, m] : msgs_) {
    for (const auto& rc : m->rcpts) rcpts += rc.state != RcptState::kDone;
  }
  for (const auto& [k, t] : threads_) threads += !t.msgs.empty();
  s.set_kids(kids);
  s.set_idle(idle);
  s.set_messages(static_cast<int64_t>(msgs_.size()));
  s.set_threads(threads);
  s.set_recipients(rcpts);
  s.set_uptime_s((NowMs() - started_ms_) / 1000);
  s.set_messages_in(counters_.msgs_in);
  s.set_messages_out(counters_.msgs_out);
  s.set_recipients_in(counters_.rcpts_in);
  return s;
}

void Scheduler::PublishMetrics() {
  QueueFigures q;
  q.messages = static_cast<int64_t>(msgs_.size());
  int64_t oldest = 0;
  for (const auto& [qid, m] : msgs_) {
    for (const auto& rc : m->rcpts)
      q.recipients += rc.state != RcptState::kDone;
    if (oldest == 0 || m->arrival_ms < oldest) oldest = m->arrival_ms;
  }
  for (const auto& [k, t] : threads_) q.threads += !t.msgs.empty();
  q.oldest_age_s =
      oldest == 0 ? 0 : std::max<int64_t>(0, (Now() - oldest) / 1000);
  for (const auto& a : agents_) q.agents += !a->eof;
  metrics_.Queue(q);
}

admin::pb::ThreadMessages Scheduler::ThreadView(std::string_view ch,
                                                std::string_view host) const {
  admin::pb::ThreadMessages out;
  out.set_channel(std::string(ch));
  out.set_host(std::string(host));
  auto it = threads_.find(ThreadKey{std::string(ch), std::string(host)});
  if (it == threads_.end()) return out;
  out.set_found(true);
  const Thread& t = it->second;
  for (const auto& qid : t.msgs) {
    auto mi = msgs_.find(qid);
    if (mi == msgs_.end()) continue;
    const Message& m = *mi->second;
    int attempts = 0;
    int64_t next = 0;
    std::string diag;
    for (const auto& rc : m.rcpts) {
      const auto& r = m.cf.recipients[static_cast<size_t>(rc.index)];
      if (rc.state == RcptState::kDone || r.channel != t.channel ||
          r.host != t.host)
        continue;
      attempts = std::max(attempts, rc.attempts);
      if (next == 0 || rc.next_ms < next) next = rc.next_ms;
      if (!rc.last_diag.empty()) diag = rc.last_diag;
    }
    admin::pb::ThreadMessage* x = out.add_messages();
    x->set_queue_id(qid);
    x->set_sender(m.cf.sender.empty() ? "<>" : m.cf.sender);
    x->set_expires((m.arrival_ms + t.params.expiry_ms) / 1000);
    x->set_next_attempt(next / 1000);
    x->set_attempts(attempts);
    x->set_diagnostic(diag);
  }
  return out;
}

std::vector<admin::pb::MessageEntry> Scheduler::MessagesView(
    std::string_view channel, std::string_view host) const {
  std::vector<admin::pb::MessageEntry> out;
  int64_t now = Now();
  for (const auto& [qid, mp] : msgs_) {
    const Message& m = *mp;
    admin::pb::MessageEntry e;
    bool deferred = false, keep = channel.empty() && host.empty();
    for (const auto& rc : m.rcpts) {
      if (rc.state == RcptState::kDone) continue;
      const auto& r = m.cf.recipients[static_cast<size_t>(rc.index)];
      keep |= (channel.empty() || r.channel == channel) &&
              (host.empty() || r.host == host);
      auto tit = threads_.find(ThreadKey{r.channel, r.host});
      int64_t expiry = tit == threads_.end() ? 0 : tit->second.params.expiry_ms;
      deferred |= rc.attempts > 0;
      admin::pb::Recipient* x = e.add_recipients();
      x->set_address(ToAddress(m, r));
      x->set_orig_to(r.orig);
      x->set_channel(r.channel);
      x->set_host(r.host);
      x->set_attempts(rc.attempts);
      x->set_active(rc.state == RcptState::kInFlight);
      x->set_next_attempt(rc.next_ms / 1000);
      x->set_expires((m.arrival_ms + expiry) / 1000);
      x->set_expires_in_s(
          std::max<int64_t>(0, (m.arrival_ms + expiry - now) / 1000));
      x->set_diagnostic(rc.last_diag);
      x->set_dsn(rc.last_dsn);
    }
    if (!keep) continue;
    e.set_node(spool_.node_tag());
    e.set_deferred(deferred);
    e.set_queue_id(qid);
    e.set_arrival_time(m.arrival_ms / 1000);
    e.set_size(m.size);
    e.set_sender(m.cf.sender);
    out.push_back(std::move(e));
  }
  return out;
}

admin::pb::Counters Scheduler::CountersView() const {
  const Counters& c = counters_;
  admin::pb::Counters out;
  out.set_uptime_s((NowMs() - started_ms_) / 1000);
  out.set_messages_in(c.msgs_in);
  out.set_messages_out(c.msgs_out);
  out.set_messages_stored(msgs_.size());
  out.set_recipients_in(c.rcpts_in);
  out.set_recipients_delivered(c.delivered);
  out.set_recipients_failed(c.failed);
  out.set_recipients_expired(c.expired);
  out.set_recipients_deferrals(c.deferred);
  out.set_dsn_sent(c.dsns);
  out.set_agents_started(c.agents_started);
  out.set_agents_running(agents_.size());
  out.set_threads(threads_.size());
  out.set_quarantined(c.quarantined);
  return out;
}

void Scheduler::Event(std::string_view line) {
  for (auto& c : admin_) {
    if (!c->events || c->closing) continue;
    if (c->outbuf.size() > kMaxEventBacklog) {
      c->outbuf.clear();  // a reader that does not keep up is dropped
      c->closing = true;
      continue;
    }
    StrAppend(&c->outbuf, "event ", line, "\n");
    FlushAdmin(*c);
  }
  PublishAdminGrpc(line);
}

}  // namespace zm::scheduler
