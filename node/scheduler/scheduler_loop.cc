// The scheduler's poll loop: signals, inotify on transport/, agents' pipes,
// admin connections, and the once-a-second tick.
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>

#include "node/common/strings.h"
#include "node/config/cluster_conf.h"
#include "node/config/mail_conf.h"
#include "node/scheduler/scheduler.h"

namespace zm::scheduler {
namespace {

constexpr int64_t kTickMs = 1000;
constexpr int64_t kRescanMs = 60'000;
constexpr int64_t kAdminIdleMs = 300'000;
constexpr int64_t kStopGraceMs = 10'000;
// inotify bytes read per loop pass: about 100 arrivals (an event is 16
// bytes plus the padded name).
constexpr size_t kInotifyBytesPerPass = 4096;

}  // namespace

Scheduler::Scheduler(Daemon& d, SchedulerConf conf, std::string hostname,
                     std::string node_tag)
    : d_(d),
      log_(d.log()),
      node_(d.node()),
      conf_(std::move(conf)),
      hostname_(std::move(hostname)),
      spool_(d.node().spool(), std::move(node_tag)) {
  started_ms_ = NowMs();
  rng_ = static_cast<uint64_t>(started_ms_) ^
         (static_cast<uint64_t>(::getpid()) << 20);
}

Scheduler::~Scheduler() {
  for (auto& a : agents_) {
    if (a->pid > 0) ::kill(a->pid, SIGKILL);
  }
  if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
}

absl::Status Scheduler::Start() {
  if (auto s = spool_.CreateLayout(); !s.ok()) return s;
  if (auto s = fs::MakeDirs(spool_.Path("retry"), 0750); !s.ok()) return s;
  if (const char* c = ::getenv("ZM_SCHEDULER_TEST_CLOCK"); c && *c == '1') {
    test_clock_ = true;
    log_.Warning("", "test clock enabled (CLOCK ADVANCE)");
  }
  if (auto s = LoadAuth(); !s.ok()) return s;
  if (conf_.syspriority) ::setpriority(PRIO_PROCESS, 0, *conf_.syspriority);
  if (conf_.sysnice) (void)::nice(*conf_.sysnice);
  inotify_.reset(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!inotify_.valid()) return fs::ErrnoStatus("inotify_init1", "", errno);
  std::string tdir = spool_.Path(spool::kTransport);
  // Control files arrive by rename (the router). Not IN_CLOSE_WRITE:
  // every result an agent appends to a control file would wake us.
  if (::inotify_add_watch(inotify_.get(), tdir.c_str(), IN_MOVED_TO) < 0) {
    return fs::ErrnoStatus("inotify_add_watch", tdir, errno);
  }
  if (auto s = remover_.Start(); !s.ok()) return s;
  if (auto s = OpenAdmin(); !s.ok()) return s;
  auto tls = LoadGrpcTls(conf_);
  if (!tls.ok()) return tls.status();
  if (auto s = OpenAdminGrpc(conf_.grpcaddr, std::move(*tls)); !s.ok())
    return s;
  ScanTransport();
  log_.Info("", StrCat("started: ", msgs_.size(),
                       " messages in the queue, admin on ", conf_.mailsock));
  return absl::OkStatus();
}

int Scheduler::Loop() {
  std::vector<pollfd> pfds;
  std::vector<std::function<void(short)>> handlers;
  int64_t last_tick = 0;
  while (true) {
    int64_t now = NowMs();
    if (stopping_) {
      ReapChildren();
      bool all_gone = agents_.empty() && zombies_.empty();
      if (all_gone) break;
      if (now >= stop_deadline_ms_) {
        for (auto& a : agents_) {
          if (a->pid > 0) ::kill(a->pid, SIGKILL);
        }
        for (pid_t p : zombies_) ::kill(p, SIGKILL);
        while (::waitpid(-1, nullptr, 0) > 0) {
        }
        break;
      }
    }
    if (now - last_tick >= kTickMs) {
      last_tick = now;
      ReapChildren();
      IdleAgents();
      CheckExpiry();
      PublishMetrics();
      if (now - last_scan_ms_ >= kRescanMs) ScanTransport();
      for (auto it = threads_.begin(); it != threads_.end();) {
        it = it->second.msgs.empty() ? threads_.erase(it) : std::next(it);
      }
      for (auto& c : admin_) {
        if (!c->events && now - c->last_ms > kAdminIdleMs) c->closing = true;
      }
    }
    Pump();
    if (!retry_dirty_.empty()) SaveRetryState();
    admin_.erase(std::remove_if(admin_.begin(), admin_.end(),
                                [](const std::unique_ptr<AdminConn>& c) {
                                  return c->closing && c->outbuf.empty();
                                }),
                 admin_.end());

    pfds.clear();
    handlers.clear();
    auto add = [&](int fd, short ev, std::function<void(short)> h) {
      pfds.push_back({fd, ev, 0});
      handlers.push_back(std::move(h));
    };
    add(d_.signal_fd(), POLLIN, [&](short) {
      while (true) {
        Daemon::Signal s = d_.TakeSignal();
        if (s == Daemon::Signal::kNone) break;
        if (s == Daemon::Signal::kReload) {
          Reload();
          (void)log_.Reopen();
        } else if (!stopping_) {
          log_.Info("", "stopping: closing transport agents");
          stopping_ = true;
          stop_deadline_ms_ = NowMs() + kStopGraceMs;
          for (auto& a : agents_) CloseAgent(*a);
          unix_listen_.reset();
          tcp_listen_.reset();
        }
      }
    });
    // One read of new arrivals per pass, not until the queue is empty:
    // while the router keeps renaming control files in, draining would
    // load messages for a long time with no agent fed and no result read.
    // What is left stays readable and is taken in the next pass, after
    // Pump() and the agents' results.
    add(inotify_.get(), POLLIN, [&](short) {
      alignas(inotify_event) char buf[kInotifyBytesPerPass];
      ssize_t n = ::read(inotify_.get(), buf, sizeof buf);
      for (char* p = buf; n > 0 && p < buf + n;) {
        auto* ev = reinterpret_cast<inotify_event*>(p);
        if (ev->mask & IN_Q_OVERFLOW) ScanTransport();
        if (ev->len > 0) LoadMessage(ev->name, true);
        p += sizeof(inotify_event) + ev->len;
      }
    });
    add(remover_.fd(), POLLIN, [&](short) { Removed(); });
    if (unix_listen_.valid()) {
      add(unix_listen_.get(), POLLIN,
          [&](short) { AcceptAdmin(unix_listen_.get(), true); });
    }
    if (tcp_listen_.valid()) {
      add(tcp_listen_.get(), POLLIN,
          [&](short) { AcceptAdmin(tcp_listen_.get(), false); });
    }
    if (AdminGrpcFd() >= 0) {
      add(AdminGrpcFd(), POLLIN, [&](short) { RunAdminGrpc(); });
    }
    for (auto& ap : agents_) {
      Agent* a = ap.get();
      if (a->out.valid())
        add(a->out.get(), POLLIN, [this, a](short) { ReadAgent(*a); });
      if (a->in.valid() && !a->outbuf.empty()) {
        add(a->in.get(), POLLOUT, [this, a](short ev) {
          if (ev & (POLLERR | POLLHUP)) {
            a->outbuf.clear();
            a->in.reset();
          } else {
            FlushAgent(*a);
          }
        });
      }
    }
    for (auto& cp : admin_) {
      AdminConn* c = cp.get();
      short ev = c->closing ? 0 : POLLIN;
      if (!c->outbuf.empty()) ev |= POLLOUT;
      add(c->fd.get(), ev, [this, c](short re) {
        if (re & POLLOUT) FlushAdmin(*c);
        if (re & (POLLIN | POLLHUP | POLLERR)) {
          if (c->closing) {
            c->outbuf.clear();
          } else {
            ReadAdmin(*c);
          }
        }
      });
    }
    int timeout =
        static_cast<int>(std::max<int64_t>(0, kTickMs - (NowMs() - last_tick)));
    int r = ::poll(pfds.data(), pfds.size(), timeout);
    if (r < 0 && errno != EINTR) {
      log_.Error("", StrCat("poll: ", std::strerror(errno)));
      return 1;
    }
    if (r <= 0) continue;
    for (size_t i = 0; i < pfds.size(); ++i) {
      if (pfds[i].revents) handlers[i](pfds[i].revents);
    }
  }
  remover_.Stop();  // the files of every finished message are gone
  Removed();
  log_.Info("", "stopped");
  return 0;
}

int Run(Daemon& d) {
  auto conf = LoadSchedulerConf(d.node());
  if (!conf.ok()) return Daemon::Fail("scheduler", conf.status());
  std::string hostname;
  if (auto mc = config::LoadMailConf(d.node()); mc.ok())
    hostname = mc->hostname;
  if (hostname.empty()) {
    char buf[256] = {};
    ::gethostname(buf, sizeof buf - 1);
    hostname = buf;
  }
  auto tag = config::LoadNodeTag(d.node());
  if (!tag.ok()) return Daemon::Fail("scheduler", tag.status());
  Scheduler s(d, std::move(*conf), hostname, *tag);
  if (auto st = s.Start(); !st.ok()) return Daemon::Fail("scheduler", st);
  if (auto st = d.Ready(); !st.ok()) return Daemon::Fail("scheduler", st);
  return s.Loop();
}

}  // namespace zm::scheduler
