// Transport agents: starting them, feeding jobs, reading results
// (docs/ta-protocol.md).
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <optional>

#include "node/common/strings.h"
#include "node/daemon/privileges.h"
#include "node/mail/xtext.h"
#include "node/scheduler/scheduler.h"

namespace zm::scheduler {
namespace {

constexpr size_t kMaxTaLine = 8192;
// Jobs an agent may hold (the one in progress and those queued behind it)
// before a thread is given another agent: a destination gets parallel
// connections when it has a backlog, not for every second message.
constexpr int kJobsBeforeSpread = 4;

int CountIf(const std::vector<std::unique_ptr<Agent>>& agents,
            const std::function<bool(const Agent&)>& f) {
  int n = 0;
  for (const auto& a : agents) n += f(*a) ? 1 : 0;
  return n;
}

// What a transport agent's process gets between fork and exec, prepared
// before: its command, stdin `in`, stdout `out`, stderr appended to
// `errlog`, the node's home as current directory and ZMAILER_HOME set,
// signals unblocked and SIGPIPE at its default, scheduler.conf's
// `priority`/`nice`, and its user (`ids`, when the clause names one).
struct AgentSetup {
  std::vector<char*> argv;  // argv[0] is a path
  std::string home;
  std::string errlog;
  int in = -1, out = -1;
  std::optional<int> nice, priority;
  std::optional<privileges::Switch> ids;
};

// The child's side of SpawnAgent: system calls only (it shares the
// scheduler's memory until the exec). An error's errno goes to `status`.
[[noreturn]] void RunAgentChild(const AgentSetup& s, char* const* envp,
                                int status) {
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::signal(SIGPIPE, SIG_DFL);
  int e = 0;
  if (::dup2(s.in, 0) < 0 || ::dup2(s.out, 1) < 0) e = errno;
  int errfd = ::open(s.errlog.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0640);
  if (errfd >= 0) ::dup2(errfd, 2);
  if (e == 0 && ::chdir(s.home.c_str()) != 0) e = errno;
  if (e == 0 && s.priority) ::setpriority(PRIO_PROCESS, 0, *s.priority);
  if (e == 0 && s.nice) (void)::nice(*s.nice);
  if (e == 0 && s.ids) e = privileges::Apply(*s.ids);
  if (e == 0) {
    ::execve(s.argv[0], s.argv.data(), envp);
    e = errno;
  }
  (void)!::write(status, &e, sizeof e);
  ::_exit(127);
}

// Starts the agent with vfork(): the loop waits only for the exec, not for
// a copy of its page tables. An exec failure comes back through a
// close-on-exec pipe. The child's pid, or -1 with *err set.
pid_t SpawnAgent(const AgentSetup& s, int* err) {
  std::string home_env = "ZMAILER_HOME=" + s.home;
  std::vector<char*> envp;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (std::strncmp(*e, "ZMAILER_HOME=", 13) != 0) envp.push_back(*e);
  }
  envp.push_back(home_env.data());
  envp.push_back(nullptr);
  int status[2];
  if (::pipe2(status, O_CLOEXEC) != 0) {
    *err = errno;
    return -1;
  }
  const pid_t pid = ::vfork();
  if (pid == 0) RunAgentChild(s, envp.data(), status[1]);
  const int spawn_errno = errno;
  ::close(status[1]);
  if (pid < 0) {
    ::close(status[0]);
    *err = spawn_errno;
    return -1;
  }
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(status[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  ::close(status[0]);
  if (n == sizeof child_errno) {
    *err = child_errno;
    int st = 0;
    ::waitpid(pid, &st, 0);
    return -1;
  }
  return pid;
}

// The identity scheduler.conf's `user`/`group` name for an agent; nullopt
// when the clause names none (the agent runs as the scheduler does).
// Honoured when the scheduler may switch users (root, or CAP_SETUID and
// CAP_SETGID, which the supervisor gives it when the node was started as
// root).
absl::StatusOr<std::optional<privileges::Switch>> AgentIdentity(
    const ThreadParams& p) {
  if ((p.user.empty() && p.group.empty()) || !privileges::CanSwitchUsers()) {
    return std::optional<privileges::Switch>();
  }
  privileges::User u;
  if (!p.user.empty()) {
    auto found = privileges::LookupUser(p.user);
    if (!found.ok()) {
      return absl::NotFoundError(
          StrCat("transport agent user '", p.user, "' is unknown"));
    }
    u = *found;
  } else {
    u.uid = ::getuid();
    u.gid = ::getgid();
  }
  if (!p.group.empty()) {
    std::vector<char> buf(16384);
    struct group gr, *found = nullptr;
    int64_t num = 0;
    if (ParseNumber(std::string_view(p.group), &num) && num >= 0) {
      ::getgrgid_r(static_cast<gid_t>(num), &gr, buf.data(), buf.size(),
                   &found);
    } else {
      ::getgrnam_r(p.group.c_str(), &gr, buf.data(), buf.size(), &found);
    }
    if (found == nullptr) {
      return absl::NotFoundError(
          StrCat("transport agent group '", p.group, "' is unknown"));
    }
    u.gid = gr.gr_gid;
    if (std::find(u.groups.begin(), u.groups.end(), u.gid) == u.groups.end())
      u.groups.push_back(u.gid);
  }
  return std::optional<privileges::Switch>(privileges::SwitchTo(u, 0));
}

}  // namespace

bool Scheduler::Ready(const Thread& t, const Rcpt& r, int64_t now) const {
  if (r.state != RcptState::kWaiting || r.next_ms > now) return false;
  return !t.params.queueonly || t.kicked;
}

// Starts an agent for thread t. Null if it could not start (the thread's
// ready recipients are then deferred).
Agent* Scheduler::StartAgent(Thread& t) {
  int ring = t.params.ring;
  auto failed_start = [&](const std::string& why) {
    int64_t now = Now();
    std::vector<std::string> touched;
    for (const auto& qid : t.msgs) {
      auto it = msgs_.find(qid);
      if (it == msgs_.end()) continue;
      Message& m = *it->second;
      for (auto& rc : m.rcpts) {
        const auto& r = m.cf.recipients[static_cast<size_t>(rc.index)];
        if (r.channel != t.channel || r.host != t.host || !Ready(t, rc, now))
          continue;
        LogResult(m, rc.index, "deferred", "4.3.0", "none", 0, 0, why, now);
        Defer(m, rc.index, "4.3.0", why, 0);
      }
      touched.push_back(qid);
    }
    for (const auto& q : touched) MaybeFinish(q);
  };
  if (t.command.empty()) {
    failed_start(t.command_error);
    return nullptr;
  }
  std::vector<std::string> words = SplitCommandWords(t.command);
  if (words.empty()) {
    failed_start("empty transport agent command");
    return nullptr;
  }
  std::string prog = words[0];
  if (prog.find('/') == std::string::npos) prog = ProgramPath(prog);
  if (::access(prog.c_str(), X_OK) != 0) {
    failed_start(StrCat("transport agent ", prog, ": ", std::strerror(errno)));
    return nullptr;
  }
  auto ids = AgentIdentity(t.params);
  if (!ids.ok()) {
    failed_start(std::string(zm::Message(ids.status())));
    return nullptr;
  }
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0) {
    failed_start(StrCat("pipe: ", std::strerror(errno)));
    return nullptr;
  }
  if (::pipe2(out, O_CLOEXEC) != 0) {
    ::close(in[0]);
    ::close(in[1]);
    failed_start(StrCat("pipe: ", std::strerror(errno)));
    return nullptr;
  }
  AgentSetup setup;
  words[0] = prog;
  for (auto& w : words) setup.argv.push_back(w.data());
  setup.argv.push_back(nullptr);
  setup.home = node_.home;
  setup.errlog = node_.log() + "/ta.stderr";
  setup.in = in[0];
  setup.out = out[1];
  setup.nice = t.params.nice;
  setup.priority = t.params.priority;
  setup.ids = std::move(*ids);
  int spawn_errno = 0;
  pid_t pid = SpawnAgent(setup, &spawn_errno);
  ::close(in[0]);
  ::close(out[1]);
  if (pid < 0) {
    ::close(in[1]);
    ::close(out[0]);
    failed_start(StrCat("transport agent ", prog,
                        ": exec: ", std::strerror(spawn_errno)));
    return nullptr;
  }
  ::fcntl(in[1], F_SETFL, O_NONBLOCK);
  ::fcntl(out[0], F_SETFL, O_NONBLOCK);
  auto a = std::make_unique<Agent>();
  a->pid = pid;
  a->in.reset(in[1]);
  a->out.reset(out[0]);
  a->ring = ring;
  a->channel = t.channel;
  a->command = t.command;
  a->last_thread = {t.channel, t.host};
  a->idlemax_ms = t.params.idlemax_ms;
  a->capacity = 1 + std::min(t.params.overfeed, 1000);
  a->idle_since_ms = NowMs();
  Agent* started = a.get();
  agents_.push_back(std::move(a));
  ++counters_.agents_started;
  return started;
}

bool Scheduler::Dispatch(Agent& a, Thread& t, int64_t now) {
  for (const std::string& qid : t.msgs) {
    auto it = msgs_.find(qid);
    if (it == msgs_.end()) continue;
    Message& m = *it->second;
    Job job;
    for (auto& rc : m.rcpts) {
      const auto& r = m.cf.recipients[static_cast<size_t>(rc.index)];
      if (rc.state != RcptState::kWaiting || r.channel != t.channel ||
          r.host != t.host) {
        continue;
      }
      if (Ready(t, rc, now)) job.indexes.push_back(rc.index);
    }
    if (job.indexes.empty()) continue;  // in flight, or not due yet
    std::string idx;
    for (int i : job.indexes) {
      m.rcpts[static_cast<size_t>(i)].state = RcptState::kInFlight;
      StrAppend(&idx, idx.empty() ? "" : ",", i);
      job.pending.insert(i);
    }
    job.qid = qid;
    job.dispatch_ms = now;
    job.thread = {t.channel, t.host};
    StrAppend(&a.outbuf, job.qid, "\t", mail::XtextEncode(t.host), "\t", idx,
              "\n");
    a.jobs.push_back(std::move(job));
    a.last_thread = {t.channel, t.host};
    FlushAgent(a);
    return true;
  }
  return false;
}

bool Scheduler::ThreadHasReady(Thread& t, int64_t now) {
  if (t.params.queueonly && !t.kicked) return false;
  if (t.next_due_ms > now || t.hold_until_ms > now) return false;
  int64_t earliest = INT64_MAX;
  for (const auto& qid : t.msgs) {
    auto it = msgs_.find(qid);
    if (it == msgs_.end()) continue;
    const Message& m = *it->second;
    for (const auto& rc : m.rcpts) {
      if (rc.state != RcptState::kWaiting) continue;
      const auto& r = m.cf.recipients[static_cast<size_t>(rc.index)];
      if (r.channel != t.channel || r.host != t.host) continue;
      if (rc.next_ms <= now) return true;
      earliest = std::min(earliest, rc.next_ms);
    }
  }
  t.next_due_ms = earliest;  // nothing due before this
  t.kicked = false;
  return false;
}

// Gives thread t (which has ready recipients) one job. In this order:
//  1. an idle agent that served t last (its connection is still open),
//     or an agent working on t that holds fewer than kJobsBeforeSpread;
//  2. while fewer than `maxthr` agents work on t: an idle agent of t's
//     ring (an agent that finished a host is fed the next thread), else a
//     new agent if `maxring`, `maxchannel` and `maxta` allow one;
//  3. one more job queued behind the others of an agent already working on
//     t (`overfeed`), unless some thread is waiting for its first agent.
// Returns 1 if a job went out, 0 if nothing could be done now, -1 if the
// thread's recipients were deferred (no agent could start).
int Scheduler::ServeThread(Thread& t, int64_t now) {
  ThreadKey key{t.channel, t.host};
  Agent* idle_same = nullptr;
  Agent* idle_other = nullptr;
  Agent* feed = nullptr;
  int serving = 0;
  for (auto& ap : agents_) {
    Agent* a = ap.get();
    if (a->closing || a->eof || a->ring != t.params.ring ||
        a->command != t.command) {
      continue;
    }
    if (a->jobs.empty()) {
      if (!a->ready) continue;
      if (a->last_thread == key) {
        if (!idle_same) idle_same = a;
      } else if (!idle_other) {
        idle_other = a;
      }
      continue;
    }
    if (a->jobs.front().thread != key) continue;
    ++serving;
    if (static_cast<int>(a->jobs.size()) < a->capacity &&
        (!feed || a->jobs.size() < feed->jobs.size())) {
      feed = a;
    }
  }
  if (idle_same) return Dispatch(*idle_same, t, now) ? 1 : 0;
  bool may_feed = feed && !agent_shortage_ && !shortage_before_;
  // One job waiting behind the current one costs nothing: no new process
  // or connection for a destination that an agent keeps up with.
  if (may_feed && static_cast<int>(feed->jobs.size()) < kJobsBeforeSpread) {
    return Dispatch(*feed, t, now) ? 1 : 0;
  }
  bool room = t.params.maxthr <= 0 || serving < t.params.maxthr;
  if (room && idle_other) return Dispatch(*idle_other, t, now) ? 1 : 0;
  if (room) {
    int ring_n = CountIf(agents_, [&](const Agent& a) {
      return a.ring == t.params.ring && !a.eof;
    });
    int chan_n = CountIf(agents_, [&](const Agent& a) {
      return a.channel == t.channel && !a.eof;
    });
    int total = CountIf(agents_, [](const Agent& a) { return !a.eof; });
    bool limited = (t.params.maxring > 0 && ring_n >= t.params.maxring) ||
                   (t.params.maxchannel > 0 && chan_n >= t.params.maxchannel) ||
                   total >= conf_.EffectiveMaxTa();
    if (!limited) {
      Agent* a = StartAgent(t);
      if (a == nullptr) return -1;
      return Dispatch(*a, t, now) ? 1 : 0;
    }
    if (serving == 0) {
      agent_shortage_ = true;
      // Make room: an idle agent of this ring for another command goes.
      for (auto& a : agents_) {
        if (a->ring == t.params.ring && a->ready && a->jobs.empty() &&
            !a->closing && a->command != t.command) {
          CloseAgent(*a);
          break;
        }
      }
    }
  }
  if (may_feed) return Dispatch(*feed, t, now) ? 1 : 0;
  return 0;
}

// Even-handed service: every thread with due recipients gets one job per
// round, starting after the thread served last, so that a destination with
// 100,000 messages takes turns with one that has a single message. Threads
// no agent works on go first: a destination waiting for its first agent
// is served before another agent is given to a busy one.
void Scheduler::Pump() {
  if (stopping_) return;
  int64_t now = Now();
  shortage_before_ = agent_shortage_;
  agent_shortage_ = false;
  std::set<ThreadKey> worked_on;
  for (const auto& a : agents_) {
    if (!a->jobs.empty()) worked_on.insert(a->jobs.front().thread);
  }
  std::vector<Thread*> order;
  order.reserve(threads_.size());
  auto split = threads_.upper_bound(rr_last_);
  for (auto it = split; it != threads_.end(); ++it)
    order.push_back(&it->second);
  for (auto it = threads_.begin(); it != split; ++it)
    order.push_back(&it->second);
  std::vector<Thread*> busy;
  for (Thread* t : order) {
    if (ThreadHasReady(*t, now)) busy.push_back(t);
  }
  std::stable_partition(busy.begin(), busy.end(), [&](const Thread* t) {
    return worked_on.count({t->channel, t->host}) == 0;
  });
  for (int round = 0; !busy.empty() && round < 100000; ++round) {
    std::vector<Thread*> again;
    for (Thread* t : busy) {
      int r = ServeThread(*t, now);
      if (r > 0) rr_last_ = {t->channel, t->host};
      if (r > 0 && ThreadHasReady(*t, now)) again.push_back(t);
    }
    busy.swap(again);
  }
}

void Scheduler::FlushAgent(Agent& a) {
  while (!a.outbuf.empty() && a.in.valid()) {
    ssize_t n = ::write(a.in.get(), a.outbuf.data(), a.outbuf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return;
      a.outbuf.clear();
      a.in.reset();
      return;
    }
    a.outbuf.erase(0, static_cast<size_t>(n));
  }
  if (a.closing && a.outbuf.empty()) a.in.reset();
}

void Scheduler::CloseAgent(Agent& a) {
  a.closing = true;
  if (a.outbuf.empty()) a.in.reset();
}

void Scheduler::ReadAgent(Agent& a) {
  char buf[16384];
  while (true) {
    ssize_t n = ::read(a.out.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      AgentGone(a,
                StrCat("transport agent read error: ", std::strerror(errno)));
      return;
    }
    if (n == 0) {
      AgentGone(a, "transport agent exited");
      return;
    }
    a.inbuf.append(buf, static_cast<size_t>(n));
    if (static_cast<size_t>(n) < sizeof buf) break;
  }
  size_t nl;
  while ((nl = a.inbuf.find('\n')) != std::string::npos) {
    std::string line = a.inbuf.substr(0, nl);
    a.inbuf.erase(0, nl + 1);
    if (line.size() > kMaxTaLine) {
      AgentGone(a, "transport agent protocol error: line too long");
      return;
    }
    if (line == "#hungry") {
      a.ready = true;
      if (a.jobs.empty()) a.idle_since_ms = NowMs();
      continue;
    }
    if (!line.empty() && line[0] == '#') continue;  // other notes
    std::vector<std::string_view> f = Split(line, '\t');
    int index = -1;
    Job* job = nullptr;
    if (f.size() == 8 && ParseNumber(f[1], &index)) {
      for (auto& j : a.jobs) {
        if (j.qid == f[0] && j.pending.count(index)) {
          job = &j;
          break;
        }
      }
    }
    if (job == nullptr) {
      log_.Error(
          f.empty() ? "" : std::string(f[0]),
          StrCat("transport agent ", a.pid, " protocol error: '", line, "'"));
      if (a.pid > 0) ::kill(a.pid, SIGKILL);
      AgentGone(a, "transport agent protocol error");
      return;
    }
    job->pending.erase(index);
    std::string qid = job->qid;
    int64_t dispatched = job->dispatch_ms;
    double c = 0, d = 0;
    try {
      c = std::stod(std::string(f[5]));
      d = std::stod(std::string(f[6]));
    } catch (...) {
    }
    auto it = msgs_.find(qid);
    if (it != msgs_.end()) {
      ResultFor(*it->second, index, f[2], f[3], f[4], c, d, f[7], dispatched);
    }
    while (!a.jobs.empty() && a.jobs.front().pending.empty())
      a.jobs.pop_front();
    if (a.jobs.empty()) a.idle_since_ms = NowMs();
    MaybeFinish(qid);
  }
  if (a.inbuf.size() > kMaxTaLine) {
    if (a.pid > 0) ::kill(a.pid, SIGKILL);
    AgentGone(a, "transport agent protocol error: line too long");
  }
}

void Scheduler::AgentGone(Agent& a, std::string_view why) {
  a.eof = true;
  a.out.reset();
  a.in.reset();
  // Not reaped yet: remember it, so shutdown waits for it. A pid that
  // ReapChildren() already collected is -1 here and must never be waited
  // for or signalled again (it may belong to another process by now).
  if (a.pid > 0) zombies_.insert(a.pid);
  std::vector<std::string> touched;
  for (auto& job : a.jobs) {
    auto it = msgs_.find(job.qid);
    if (it == msgs_.end()) continue;
    Message& m = *it->second;
    // A final result the agent managed to append counts.
    std::map<int, mail::ControlResult> results;
    if (auto text =
            fs::ReadFile(spool_.Path(spool::kTransport, m.id), 16u << 20);
        text.ok()) {
      if (auto cf = mail::ParseControl(*text); cf.ok()) {
        for (auto& r : cf->results) results[r.index] = r;
      }
    }
    for (int idx : job.pending) {
      Rcpt& rc = m.rcpts[static_cast<size_t>(idx)];
      auto r = results.find(idx);
      if (r != results.end()) {
        bool failed = r->second.status == mail::ResultStatus::kFailed;
        ResultFor(m, idx, failed ? "error" : "ok", r->second.dsn, "none", 0, 0,
                  r->second.diag, job.dispatch_ms);
      } else if (rc.state == RcptState::kInFlight) {
        LogResult(m, idx, "deferred", "4.3.0", "none", 0, 0, why,
                  job.dispatch_ms);
        Defer(m, idx, "4.3.0", why, 0);
      }
    }
    touched.push_back(job.qid);
  }
  a.jobs.clear();
  for (const auto& q : touched) MaybeFinish(q);
}

void Scheduler::ReapChildren() {
  while (true) {
    int st = 0;
    pid_t pid = ::waitpid(-1, &st, WNOHANG);
    if (pid <= 0) break;
    zombies_.erase(pid);
    for (auto& a : agents_) {
      if (a->pid != pid) continue;
      a->pid = -1;  // reaped
      if (!a->eof) {
        // Exited before we saw EOF: drain what it wrote first.
        if (a->out.valid()) ReadAgent(*a);
        if (!a->eof) AgentGone(*a, "transport agent exited");
      }
    }
    if (WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) != 0)) {
      log_.Warning("",
                   StrCat("transport agent ", pid, " ended with ",
                          WIFSIGNALED(st) ? "signal " : "status ",
                          WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st)));
    }
  }
  agents_.erase(std::remove_if(agents_.begin(), agents_.end(),
                               [](const std::unique_ptr<Agent>& a) {
                                 return a->eof && a->pid == -1;
                               }),
                agents_.end());
}

void Scheduler::IdleAgents() {
  int64_t now = NowMs();
  for (auto& a : agents_) {
    if (a->ready && !a->closing && a->jobs.empty() &&
        now - a->idle_since_ms >= a->idlemax_ms) {
      CloseAgent(*a);
    }
  }
}

}  // namespace zm::scheduler
