// The router daemon: a dispatcher thread (inotify + periodic rescan) feeds
// worker threads that route batches; the main thread handles signals.
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <set>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/config/cluster_conf.h"
#include "node/metrics/metrics_catalog.h"
#include "node/router/router.h"

namespace zm::router {
namespace {

// Names of router/ known to be waiting or in a worker's hands.
class WorkQueue {
 public:
  explicit WorkQueue(size_t batch_max) : batch_max_(batch_max) {}

  void Add(const std::string& name) {
    absl::MutexLock l(&mu_);
    if (in_flight_.count(name) || !pending_.insert(name).second) return;
  }

  // Blocks for work; oldest ids first (ids sort by arrival). Empty when
  // stopping.
  std::vector<std::string> TakeBatch() {
    absl::MutexLock l(&mu_);
    mu_.Await(absl::Condition(
        +[](WorkQueue* q) ABSL_EXCLUSIVE_LOCKS_REQUIRED(q->mu_) {
          return q->stopping_ || !q->pending_.empty();
        },
        this));
    std::vector<std::string> out;
    if (stopping_) return out;
    while (!pending_.empty() && out.size() < batch_max_) {
      auto it = pending_.begin();
      in_flight_.insert(*it);
      out.push_back(*it);
      pending_.erase(it);
    }
    return out;
  }

  // The batch is finished (names retried later are simply forgotten: the
  // next rescan finds them again).
  void Done(const std::vector<std::string>& names) {
    absl::MutexLock l(&mu_);
    for (const auto& n : names) in_flight_.erase(n);
  }

  void Stop() {
    absl::MutexLock l(&mu_);
    stopping_ = true;
  }

 private:
  const size_t batch_max_;
  absl::Mutex mu_;
  std::set<std::string> pending_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> in_flight_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

// The Routing in use; replaced whole on SIGHUP.
class RoutingHolder {
 public:
  explicit RoutingHolder(std::shared_ptr<Routing> r) : r_(std::move(r)) {}
  std::shared_ptr<Routing> Get() {
    absl::MutexLock l(&mu_);
    return r_;
  }
  void Set(std::shared_ptr<Routing> r) {
    absl::MutexLock l(&mu_);
    r_ = std::move(r);
  }

 private:
  absl::Mutex mu_;
  std::shared_ptr<Routing> r_ ABSL_GUARDED_BY(mu_);
};

void Rescan(const spool::Spool& spool, WorkQueue& work, Logger& log) {
  auto names = fs::ListDir(spool.Path(spool::kRouter));
  if (!names.ok()) {
    log.Error("", Message(names.status()));
    return;
  }
  for (const auto& n : *names) work.Add(n);
}

void Dispatch(const spool::Spool& spool, WorkQueue& work, Logger& log,
              int inotify_fd, int stop_fd, int rescan_seconds) {
  using Clock = std::chrono::steady_clock;
  Rescan(spool, work, log);
  auto next_scan = Clock::now() + std::chrono::seconds(rescan_seconds);
  alignas(struct inotify_event) char buf[16384];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    next_scan - Clock::now())
                    .count();
    struct pollfd pfd[2] = {{inotify_fd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
    int n = ::poll(pfd, 2, static_cast<int>(std::max<int64_t>(left, 0)));
    if (n < 0 && errno != EINTR) {
      log.Error("", Message(fs::ErrnoStatus("poll", "inotify", errno)));
      return;
    }
    if (pfd[1].revents) return;
    if (n > 0 && (pfd[0].revents & POLLIN)) {
      ssize_t len = ::read(inotify_fd, buf, sizeof buf);
      for (ssize_t off = 0; len > 0 && off < len;) {
        auto* ev = reinterpret_cast<struct inotify_event*>(buf + off);
        off += static_cast<ssize_t>(sizeof(struct inotify_event) + ev->len);
        if (ev->mask & IN_Q_OVERFLOW) {
          Rescan(spool, work, log);
          continue;
        }
        if (ev->len == 0) continue;
        std::string name(ev->name);
        if (!name.empty() && name.front() != '.') work.Add(name);
      }
    }
    if (Clock::now() >= next_scan) {
      if (auto s = RemoveAbandonedSubmissions(spool, log); !s.ok()) {
        log.Warning("", Message(s));
      }
      Rescan(spool, work, log);
      next_scan = Clock::now() + std::chrono::seconds(rescan_seconds);
    }
  }
}

void Work(const spool::Spool& spool, RoutingHolder& holder, WorkQueue& work,
          Logger& log, metrics::Registry& metrics) {
  metrics::Counter done =
      metrics.GetCounter(metrics::kRouterMessages, {{"result", "done"}});
  metrics::Counter retried =
      metrics.GetCounter(metrics::kRouterMessages, {{"result", "retried"}});
  for (;;) {
    std::vector<std::string> batch = work.TakeBatch();
    if (batch.empty()) return;
    std::shared_ptr<Routing> routing = holder.Get();
    if (auto s = routing->ReloadIfChanged(); !s.ok()) {
      log.Warning("", StrCat("relations not reloaded: ", Message(s)));
    }
    std::vector<std::string> retry;
    if (auto s = RouteBatch(spool, *routing, log, batch, &retry); !s.ok()) {
      log.Error(
          "", StrCat("batch of ", batch.size(), " not finished: ", Message(s)));
    }
    done.Inc(static_cast<int64_t>(batch.size() - retry.size()));
    retried.Inc(static_cast<int64_t>(retry.size()));
    work.Done(batch);
  }
}

}  // namespace

absl::StatusOr<RouterOptions> ParseRouterArgs(
    const std::vector<std::string>& args) {
  RouterOptions o;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-n") {
      if (i + 1 >= args.size() || !ParseNumber(args[i + 1], &o.workers) ||
          o.workers < 1 || o.workers > 64) {
        return absl::InvalidArgumentError("-n needs a worker count 1..64");
      }
      ++i;
    } else {
      return absl::InvalidArgumentError(StrCat(
          "unknown argument '", a, "' (usage: router [-C DIR] [-f] [-n N])"));
    }
  }
  return o;
}

int RunRouter(Daemon& daemon, const RouterOptions& options) {
  Logger& log = daemon.log();
  const NodeDir& node = daemon.node();
  // run/metrics/router.stats (docs/metrics.md).
  auto registry = metrics::Registry::Open(node.run() + "/metrics", "router");
  RoutingOptions routing_options;
  routing_options.metrics = registry.get();
  auto routing = Routing::Open(node, routing_options);
  if (!routing.ok()) return Daemon::Fail(daemon.program(), routing.status());
  auto tag = config::LoadNodeTag(node);
  if (!tag.ok()) return Daemon::Fail(daemon.program(), tag.status());
  spool::Spool spool(node.spool(), *tag);
  if (auto s = RecoverSpool(spool, log); !s.ok()) {
    return Daemon::Fail(daemon.program(), s);
  }

  fs::UniqueFd inotify_fd(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  fs::UniqueFd stop_fd(::eventfd(0, EFD_CLOEXEC));
  if (!inotify_fd.valid() || !stop_fd.valid()) {
    return Daemon::Fail(daemon.program(),
                        fs::ErrnoStatus("inotify/eventfd", "", errno));
  }
  std::string router_dir = spool.Path(spool::kRouter);
  if (::inotify_add_watch(inotify_fd.get(), router_dir.c_str(),
                          IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
    return Daemon::Fail(daemon.program(), fs::ErrnoStatus("inotify_add_watch",
                                                          router_dir, errno));
  }

  RoutingHolder holder(std::shared_ptr<Routing>(std::move(*routing)));
  WorkQueue work(options.batch_max);
  std::thread dispatcher(Dispatch, std::cref(spool), std::ref(work),
                         std::ref(log), inotify_fd.get(), stop_fd.get(),
                         options.rescan_seconds);
  std::vector<std::thread> workers;
  for (int i = 0; i < options.workers; ++i) {
    workers.emplace_back(Work, std::cref(spool), std::ref(holder),
                         std::ref(work), std::ref(log), std::ref(*registry));
  }
  if (auto s = daemon.Ready(); !s.ok()) {
    log.Error("", StrCat("cannot write pid file: ", Message(s)));
  }
  log.Info("", StrCat("started with ", options.workers, " workers"));

  for (;;) {
    struct pollfd pfd = {daemon.signal_fd(), POLLIN, 0};
    if (::poll(&pfd, 1, -1) < 0 && errno != EINTR) break;
    Daemon::Signal sig = daemon.TakeSignal();
    if (sig == Daemon::Signal::kStop) break;
    if (sig == Daemon::Signal::kReload) {
      (void)log.Reopen();
      auto fresh = Routing::Open(node, routing_options);
      if (fresh.ok()) {
        holder.Set(std::shared_ptr<Routing>(std::move(*fresh)));
        log.Info("", "configuration and relations reloaded");
      } else {
        log.Warning("",
                    StrCat("reload refused, keeping the old configuration: ",
                           Message(fresh.status())));
      }
    }
  }

  log.Info("", "stopping after the current batches");
  work.Stop();
  uint64_t one = 1;
  (void)!::write(stop_fd.get(), &one, sizeof one);
  dispatcher.join();
  for (auto& t : workers) t.join();
  log.Info("", "stopped");
  return 0;
}

}  // namespace zm::router
