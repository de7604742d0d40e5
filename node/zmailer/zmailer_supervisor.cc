// The supervisor: starts the node's programs, restarts one that dies,
// forwards reloads, and stops them in reverse order.
//
// One thread, one poll loop over a signalfd (SIGCHLD, stop and reload
// signals) and an inotify watch on run/ (a program is ready when its pid
// file names it). Each program runs in its own process group, so `zmailer
// kill` can take a program together with the helpers it started.
//
// Started as root, the supervisor runs the node as the node user
// (node/daemon/privileges.h): it makes the writable folders that user's,
// switches itself to it keeping only the capabilities it hands on, and
// starts each program as that user with only what the program needs:
// CAP_NET_BIND_SERVICE for the smtpserver (and for admind or clusterd
// configured on a port below 1024), CAP_SETUID/CAP_SETGID for the
// scheduler (transport agents as scheduler.conf's users), with CAP_KILL
// to stop them.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <optional>
#include <string_view>

#include "cluster/conf/cluster_conf.h"
#include "node/admind/admind_config.h"
#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/daemon/health.h"
#include "node/daemon/privileges.h"
#include "node/metrics/metrics.h"
#include "node/metrics/metrics_catalog.h"
#include "node/zmailer/restart_policy.h"
#include "node/zmailer/supervisor_internal.h"
#include "node/zmailer/zmailer.h"
#include "node/zmailer/zmailer_drain.h"
#ifdef ZM_HAVE_SMTP_POLICY
#include "node/smtpserver/smtpserver_config.h"
#endif

namespace zm::zmailer {
namespace {

using Clock = std::chrono::steady_clock;

// How long a program may take to stop on SIGTERM before it gets SIGKILL
// when etc/drain.conf cannot be read.
constexpr int kStopTimeoutMs = 20000;
// Stopped first, in this order, during a drain: mail intake, then the
// fleet membership; the rest in reverse start order, admind (readiness,
// health) last.
constexpr std::string_view kStopFirst[] = {"smtpserver", "clusterd"};
constexpr std::string_view kStopLast = "admind";
// A program's captured stderr is rotated past this size.
constexpr off_t kMaxStderrBytes = 1 << 20;

// The restart policy; the tests shorten its delays with
// ZM_TEST_RESTART_DELAY_MS (the first delay; they still double up to 60 s).
RestartPolicyOptions PolicyOptions() {
  RestartPolicyOptions o;
  const char* v = std::getenv("ZM_TEST_RESTART_DELAY_MS");
  int64_t ms = 0;
  if (v != nullptr && ParseNumber(std::string_view(v), &ms) && ms > 0) {
    o.initial_delay_ms = ms;
  }
  return o;
}

// "2s", or "250ms" below a second or off whole seconds.
std::string FormatDelay(int64_t ms) {
  return ms >= 1000 && ms % 1000 == 0 ? StrCat(ms / 1000, "s")
                                      : StrCat(ms, "ms");
}

int64_t MsBetween(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count();
}

struct Child {
  std::string name;
  std::string path;
  pid_t pid = 0;
  bool ready = false;
  bool gave_up = false;
  Clock::time_point started;
  std::optional<Clock::time_point> restart_at;
  off_t stderr_offset = 0;
  RestartPolicy policy;
  uint64_t keep_caps = 0;  // capabilities it runs with (privileges.h)
};

// The capabilities a program needs: binding a port below 1024, running
// transport agents as other users.
uint64_t CapabilitiesOf(const NodeDir& node, std::string_view program) {
  if (program == "smtpserver") return privileges::kNetBindService;
  if (program == "scheduler") {
    // Agents as scheduler.conf's users (the mailbox agent as root), and
    // killed when they hang.
    return privileges::kSetuid | privileges::kSetgid | privileges::kKill;
  }
  if (program == "admind") {
    auto conf = admind::LoadAdminConfig(node);
    if (conf.ok() && conf->listen_port < 1024) {
      return privileges::kNetBindService;
    }
  }
  if (program == "clusterd") {
    auto conf = cluster::LoadClusterConf(node);
    if (conf.ok() && conf->gossip_listen.port != 0 &&
        conf->gossip_listen.port < 1024) {
      return privileges::kNetBindService;
    }
  }
  return 0;
}

// smtpserver.conf's PARAM user: the node user, when set.
std::string ConfiguredUser(const NodeDir& node) {
#ifdef ZM_HAVE_SMTP_POLICY
  auto conf = smtpserver::LoadServerConfig(node);
  if (conf.ok()) return conf->run_as_user;
#else
  (void)node;
#endif
  return "";
}

class Supervisor {
 public:
  Supervisor(const SupervisorOptions& opts, Logger& log)
      : opts_(opts), log_(log), report_fd_(opts.report_fd) {
    for (const auto& p : opts.programs) {
      Child c;
      c.name = p;
      c.path = ProgramPath(p);
      c.policy = RestartPolicy(PolicyOptions());
      children_.push_back(std::move(c));
    }
  }

  int Run();

 private:
  // kDrain (SIGTERM) waits drain.conf's readiness-delay before stopping;
  // kStop (SIGINT, `zmailer stop`) does not.
  enum class Event { kNone, kStop, kDrain, kReload, kChild };

  absl::Status Setup();
  // Started as root: picks the node user and gives it its folders.
  absl::Status PrepareNodeUser();
  void StartChild(Child& c);
  void ReapChildren();
  void HandleExit(Child& c, int status);
  void CheckReadiness();
  void Report(char kind, std::string_view text);
  void Reload();
  void BeginDrain(bool readiness_delay);
  void StopAll();
  void StopChild(Child& c);
  bool WaitChild(Child& c, int timeout_ms);
  std::vector<Event> ReadSignals();
  int PollTimeoutMs() const;
  void RunDueRestarts();
  std::string StartupOutput(const Child& c) const;
  void RemovePidFileOf(const std::string& program, pid_t pid) const;

  const SupervisorOptions& opts_;
  Logger& log_;
  std::vector<Child> children_;
  fs::UniqueFd signal_fd_, inotify_fd_, null_fd_, lock_fd_;
  int report_fd_;
  // The node user when started as root (nullopt: not root, or no user).
  std::optional<privileges::User> node_user_;
  bool stopping_ = false;
  bool hurry_ = false;  // a second stop request: do not wait politely
  bool announced_ready_ = false;
  bool wrote_pid_ = false;
  int stop_timeout_ms_ = kStopTimeoutMs;
  // run/metrics/zmailer.stats: restarts per program (docs/metrics.md).
  std::unique_ptr<metrics::Registry> metrics_ = metrics::Registry::InMemory(8);
};

absl::Status Supervisor::Setup() {
  const NodeDir& node = opts_.node;
  for (const auto& d : {node.run(), node.log()}) {
    if (auto s = fs::MakeDirs(d, 0755); !s.ok()) return s;
  }
  if (::geteuid() == 0) {
    if (auto s = PrepareNodeUser(); !s.ok()) return s;
  }
  std::string lock = internal::SupervisorLock(node);
  lock_fd_.reset(::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!lock_fd_.valid()) return fs::ErrnoStatus("open", lock, errno);
  if (::flock(lock_fd_.get(), LOCK_EX | LOCK_NB) != 0) {
    return absl::AlreadyExistsError(
        StrCat("a supervisor already runs for ", node.home));
  }
  for (Child& c : children_) {
    auto st = health::ReadProgramState(node, c.name);
    if (st.running) {
      return absl::FailedPreconditionError(
          StrCat(c.name, " already runs (pid ", st.pid,
                 ") without a supervisor; 'zmailer stop' or 'zmailer kill' "
                 "first"));
    }
    if (::access(c.path.c_str(), X_OK) != 0) {
      return absl::NotFoundError(
          StrCat("program ", c.name, " not found at ", c.path,
                 " (all programs of a node live in one folder)"));
    }
  }
  metrics_ = metrics::Registry::Open(node.run() + "/metrics", "zmailer", 64);

  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1}) {
    sigaddset(&set, sig);
  }
  if (::sigprocmask(SIG_BLOCK, &set, nullptr) != 0) {
    return fs::ErrnoStatus("sigprocmask", "", errno);
  }
  signal_fd_.reset(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!signal_fd_.valid()) return fs::ErrnoStatus("signalfd", "", errno);
  // A parent that stopped waiting must not kill us with SIGPIPE.
  ::signal(SIGPIPE, SIG_IGN);

  // Without inotify readiness is still noticed, by a slower poll.
  inotify_fd_.reset(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (inotify_fd_.valid() &&
      ::inotify_add_watch(inotify_fd_.get(), node.run().c_str(),
                          IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
    inotify_fd_.reset();
  }
  null_fd_.reset(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!null_fd_.valid()) return fs::ErrnoStatus("open", "/dev/null", errno);

  // The programs and the transport agents they start find the node the
  // same way as the supervisor does.
  ::setenv("ZMAILER_HOME", node.home.c_str(), 1);
  // Do not pin whatever folder the operator started us from.
  if (::chdir(node.home.c_str()) != 0) {
    return fs::ErrnoStatus("chdir", node.home, errno);
  }

  if (auto s = fs::WriteFileAtomically(node.run(), "zmailer.pid",
                                       StrCat(::getpid(), "\n"));
      !s.ok()) {
    return s;
  }
  wrote_pid_ = true;
  // A start ends the drain of a previous run.
  if (::unlink(internal::DrainingMarker(node).c_str()) == 0) {
    log_.Info("", "run/draining removed: the node takes mail again");
  }
  for (Child& c : children_) c.keep_caps = CapabilitiesOf(node, c.name);
  if (node_user_) {
    // From here on the node user, with only what the programs get.
    // CAP_KILL: a program's process group holds the agents the scheduler
    // runs as other users.
    uint64_t keep = privileges::kNetBindService | privileges::kSetuid |
                    privileges::kSetgid | privileges::kKill;
    if (int e = privileges::Apply(privileges::SwitchTo(*node_user_, keep))) {
      return fs::ErrnoStatus(StrCat("switch to user ", node_user_->name), "",
                             e);
    }
    // Handed on per program in StartChild, not inherited by all.
    privileges::ClearInheritance();
    log_.Info("",
              StrCat("the node is running as user ", node_user_->name, " (uid ",
                     node_user_->uid, ", gid ", node_user_->gid, ")"));
  }
  return absl::OkStatus();
}

absl::Status Supervisor::PrepareNodeUser() {
  const NodeDir& node = opts_.node;
  std::string configured = ConfiguredUser(node);
  auto user = privileges::NodeUser(node, configured);
  if (!user.ok()) {
    return absl::InvalidArgumentError(
        StrCat("the node user (smtpserver.conf PARAM user ", configured,
               "): ", Message(user.status())));
  }
  if (!user->has_value() || (*user)->uid == 0) {
    log_.Warning("", StrCat("every program runs as root: set PARAM user in "
                            "smtpserver.conf, or give ",
                            node.home, " to the user the node should run as"));
    return absl::OkStatus();
  }
  if (auto s = privileges::ChownNodeTree(node, **user); !s.ok()) {
    return absl::PermissionDeniedError(StrCat(
        "giving the node's folders to user ", (*user)->name, ": ", Message(s)));
  }
  struct stat st;
  if (::stat(node.etc().c_str(), &st) == 0 && st.st_uid == (*user)->uid) {
    // Whoever runs as that user can then change scheduler.conf, and with
    // it who the transport agents run as.
    log_.Warning("",
                 StrCat(node.etc(), " belongs to the node user ", (*user)->name,
                        ": give it to root so that the programs cannot "
                        "change their own configuration"));
  }
  node_user_ = **user;
  return absl::OkStatus();
}

void Supervisor::RemovePidFileOf(const std::string& program, pid_t pid) const {
  auto st = health::ReadProgramState(opts_.node, program);
  if (st.pid != 0 && (pid == 0 || st.pid == pid)) {
    ::unlink(opts_.node.pid_file(program).c_str());
  }
}

void Supervisor::StartChild(Child& c) {
  c.restart_at.reset();
  // Whatever pid file is left names a process that is gone: readiness
  // must come from the new one.
  RemovePidFileOf(c.name, 0);

  fs::UniqueFd err;
  if (!opts_.foreground) {
    std::string path = internal::StderrFile(opts_.node, c.name);
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && st.st_size > kMaxStderrBytes) {
      ::rename(path.c_str(), (path + ".old").c_str());
    }
    err.reset(
        ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640));
    c.stderr_offset = 0;
    if (err.valid() && ::fstat(err.get(), &st) == 0) {
      c.stderr_offset = st.st_size;
    }
  }
  // Everything the child needs is prepared before fork(): after it, only
  // async-signal-safe calls.
  std::vector<std::string> args = {c.path, "-C", opts_.node.home};
  if (opts_.foreground) args.push_back("-f");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  sigset_t empty;
  sigemptyset(&empty);
  // The node user (started as root), or this user (started unprivileged,
  // e.g. with systemd's ambient CAP_NET_BIND_SERVICE): each program gets
  // only the capabilities it needs, as ambient ones so that they survive
  // the exec; the programs clear their ambient set at start (daemon.h).
  privileges::Switch sw;
  if (node_user_) sw = privileges::SwitchTo(*node_user_, 0);
  sw.keep = c.keep_caps;
  const bool apply = node_user_.has_value() || ::geteuid() != 0;

  pid_t pid = ::fork();
  if (pid < 0) {
    int e = errno;
    log_.Error("", StrCat("cannot start ", c.name, ": fork: ", strerror(e)));
    c.restart_at = Clock::now() + std::chrono::seconds(1);
    return;
  }
  if (pid == 0) {
    ::sigprocmask(SIG_SETMASK, &empty, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    ::setpgid(0, 0);
    if (apply && privileges::Apply(sw) != 0) {
      static constexpr char kMsg[] = "zmailer: cannot switch user\n";
      (void)!::write(err.valid() ? err.get() : 2, kMsg, sizeof kMsg - 1);
      ::_exit(126);
    }
    ::dup2(null_fd_.get(), 0);
    if (err.valid()) {
      ::dup2(err.get(), 1);
      ::dup2(err.get(), 2);
    }
    ::execv(c.path.c_str(), argv.data());
    static constexpr char kMsg[] = "zmailer: exec failed\n";
    (void)!::write(2, kMsg, sizeof kMsg - 1);
    ::_exit(127);
  }
  // Also here, so the group exists whichever of us runs first.
  ::setpgid(pid, pid);
  c.pid = pid;
  c.ready = false;
  c.started = Clock::now();
  log_.Info("", StrCat("started ", c.name, " (pid ", pid, ")"));
}

std::string Supervisor::StartupOutput(const Child& c) const {
  std::string out;
  if (!opts_.foreground) {
    out = internal::TailOf(internal::StderrFile(opts_.node, c.name),
                           c.stderr_offset, 10, "  ");
  }
  if (out.empty()) out = internal::LastLogLines(opts_.node, c.name, 5, "  ");
  return out;
}

void Supervisor::HandleExit(Child& c, int status) {
  pid_t pid = c.pid;
  bool was_ready = c.ready;
  int64_t uptime_ms = MsBetween(c.started, Clock::now());
  c.pid = 0;
  c.ready = false;
  RemovePidFileOf(c.name, pid);
  std::string how = internal::DescribeWaitStatus(status);
  if (stopping_) {
    log_.Info("", StrCat(c.name, " (pid ", pid, ") ", how));
    return;
  }
  if (report_fd_ >= 0 && !was_ready) {
    Report('F',
           StrCat(c.name, " failed to start (", how, ")\n", StartupOutput(c)));
  }
  int exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  auto d = c.policy.OnExit(exit_code, was_ready, uptime_ms);
  // The first line of what it printed since its start, so the log says why.
  std::string said;
  if (!opts_.foreground) {
    std::string tail = internal::TailOf(
        internal::StderrFile(opts_.node, c.name), c.stderr_offset, 10, "");
    std::string_view out = Trim(tail);
    if (!out.empty()) {
      said = StrCat(" (", Trim(out.substr(0, out.find('\n'))), ")");
    }
  }
  if (d.give_up) {
    c.gave_up = true;
    log_.Error("", StrCat(c.name, " (pid ", pid, ") ", how, said,
                          "; it failed ", c.policy.config_failures(),
                          " times in a row right after start: giving up on "
                          "it (fix its configuration, then 'zmailer "
                          "reload')"));
    return;
  }
  c.restart_at = Clock::now() + std::chrono::milliseconds(d.delay_ms);
  metrics_->GetCounter(metrics::kRestarts, {{"program", c.name}}).Inc();
  // The delay grows while the program keeps dying soon after its start.
  log_.Warning("", StrCat(c.name, " (pid ", pid, ") ", how, said,
                          "; restarting in ", FormatDelay(d.delay_ms),
                          " (restart ", c.policy.consecutive(), " in a row)"));
}

void Supervisor::ReapChildren() {
  for (;;) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    for (Child& c : children_) {
      if (c.pid == pid) {
        HandleExit(c, status);
        break;
      }
    }
  }
}

void Supervisor::CheckReadiness() {
  bool all = true;
  for (Child& c : children_) {
    if (c.pid != 0 && !c.ready) {
      auto st = health::ReadProgramState(opts_.node, c.name);
      c.ready = st.pid == c.pid;
    }
    all = all && c.ready;
  }
  if (!all) return;
  if (!announced_ready_) {
    announced_ready_ = true;
    std::string list;
    for (const Child& c : children_) {
      StrAppend(&list, list.empty() ? "" : ", ", c.name, " (pid ", c.pid, ")");
    }
    log_.Info("", StrCat("node ", opts_.node.home, " is up: ", list));
  }
  if (report_fd_ >= 0) Report('O', "");
}

void Supervisor::Report(char kind, std::string_view text) {
  if (report_fd_ < 0) return;
  std::string msg = StrCat(std::string(1, kind), text);
  (void)fs::WriteAll(report_fd_, msg, "report pipe");
  ::close(report_fd_);
  report_fd_ = -1;
}

void Supervisor::Reload() {
  log_.Info("", "reload: passing SIGHUP to every program");
  (void)log_.Reopen();
  for (Child& c : children_) {
    if (c.pid != 0) {
      ::kill(c.pid, SIGHUP);
    } else if (c.gave_up) {
      // The operator says the configuration is fixed: try again.
      c.gave_up = false;
      c.policy.Reset();
      StartChild(c);
    }
  }
}

std::vector<Supervisor::Event> Supervisor::ReadSignals() {
  std::vector<Event> events;
  struct signalfd_siginfo si;
  while (::read(signal_fd_.get(), &si, sizeof si) == sizeof si) {
    switch (si.ssi_signo) {
      case SIGCHLD:
        events.push_back(Event::kChild);
        break;
      case SIGTERM:
        events.push_back(Event::kDrain);
        break;
      case SIGINT:
        events.push_back(Event::kStop);
        break;
      case SIGHUP:
      case SIGUSR1:
        events.push_back(Event::kReload);
        break;
      default:
        break;
    }
  }
  return events;
}

bool Supervisor::WaitChild(Child& c, int timeout_ms) {
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (c.pid != 0) {
    int64_t left = MsBetween(Clock::now(), deadline);
    if (left <= 0 || hurry_) return false;
    struct pollfd p = {signal_fd_.get(), POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(left));
    for (Event e : ReadSignals()) {
      if (e == Event::kStop || e == Event::kDrain) hurry_ = true;
    }
    // SIGCHLDs coalesce: always look.
    ReapChildren();
  }
  return true;
}

void Supervisor::BeginDrain(bool readiness_delay) {
  const NodeDir& node = opts_.node;
  auto settings = internal::LoadDrainSettings(node);
  if (!settings.ok()) {
    log_.Warning(
        "", StrCat(Message(settings.status()), "; draining with the defaults"));
    settings = internal::DrainSettings{};
  }
  stop_timeout_ms_ = static_cast<int>(
      std::min<int64_t>(settings->stop_timeout_ms, 24LL * 3600 * 1000));
  if (auto s = fs::WriteFileAtomically(node.run(), "draining",
                                       StrCat(::time(nullptr), "\n"));
      !s.ok()) {
    log_.Error("", StrCat("draining: ", Message(s)));
  }
  int64_t delay = readiness_delay ? settings->readiness_delay_ms : 0;
  log_.Info("", StrCat("draining: run/draining created (not ready); "
                       "refusing mail in ",
                       delay, "ms"));
  // The programs keep working (and are restarted) meanwhile; a second
  // stop request cuts the wait short.
  auto deadline = Clock::now() + std::chrono::milliseconds(delay);
  while (!hurry_) {
    int64_t left = MsBetween(Clock::now(), deadline);
    if (left <= 0) break;
    int timeout = PollTimeoutMs();
    timeout = timeout < 0 ? static_cast<int>(left)
                          : static_cast<int>(std::min<int64_t>(timeout, left));
    struct pollfd p = {signal_fd_.get(), POLLIN, 0};
    ::poll(&p, 1, timeout);
    for (Event e : ReadSignals()) {
      if (e == Event::kStop || e == Event::kDrain) hurry_ = true;
    }
    ReapChildren();
    RunDueRestarts();
  }
}

void Supervisor::StopChild(Child& c) {
  c.restart_at.reset();
  if (c.pid == 0) return;
  pid_t pid = c.pid;
  ::kill(pid, SIGTERM);
  if (WaitChild(c, stop_timeout_ms_)) return;
  log_.Warning("", StrCat(c.name, " (pid ", pid, ") did not stop within ",
                          stop_timeout_ms_ / 1000, "s; killing it"));
  ::kill(-pid, SIGKILL);  // its process group: its helpers too
  ::kill(pid, SIGKILL);
  int status = 0;
  if (::waitpid(pid, &status, 0) == pid) HandleExit(c, status);
}

void Supervisor::StopAll() {
  stopping_ = true;
  log_.Info("", StrCat("stopping node ", opts_.node.home));
  for (Child& c : children_) c.restart_at.reset();
  for (std::string_view name : kStopFirst) {
    for (Child& c : children_) {
      if (c.name == name) StopChild(c);
    }
  }
  for (auto it = children_.rbegin(); it != children_.rend(); ++it) {
    if (it->name != kStopLast) StopChild(*it);
  }
  for (Child& c : children_) StopChild(c);
}

int Supervisor::PollTimeoutMs() const {
  int64_t timeout = -1;
  auto now = Clock::now();
  for (const Child& c : children_) {
    if (c.restart_at) {
      int64_t ms = std::max<int64_t>(0, MsBetween(now, *c.restart_at));
      timeout = timeout < 0 ? ms : std::min(timeout, ms);
    }
    // Safety net for a file system without inotify.
    if (c.pid != 0 && !c.ready && !inotify_fd_.valid()) {
      timeout = timeout < 0 ? 200 : std::min<int64_t>(timeout, 200);
    }
  }
  return static_cast<int>(timeout);
}

void Supervisor::RunDueRestarts() {
  auto now = Clock::now();
  for (Child& c : children_) {
    if (c.restart_at && *c.restart_at <= now && !stopping_) StartChild(c);
  }
}

int Supervisor::Run() {
  if (auto s = Setup(); !s.ok()) {
    log_.Error("", Message(s));
    Report('F', Message(s));
    if (wrote_pid_) ::unlink(opts_.node.pid_file("zmailer").c_str());
    return kExitFailure;
  }
  std::string names;
  for (const Child& c : children_) StrAppend(&names, " ", c.name);
  log_.Info("",
            StrCat("supervisor starting node ", opts_.node.home, ":", names));
  for (Child& c : children_) StartChild(c);
  // Children that fail at once are noticed before anything else.
  ReapChildren();
  CheckReadiness();
  bool stop = false;
  bool readiness_delay = false;
  while (!stop) {
    struct pollfd fds[2] = {{signal_fd_.get(), POLLIN, 0},
                            {inotify_fd_.get(), POLLIN, 0}};
    int n = inotify_fd_.valid() ? 2 : 1;
    if (::poll(fds, n, PollTimeoutMs()) < 0 && errno != EINTR) {
      log_.Error("", StrCat("poll: ", strerror(errno)));
      break;
    }
    bool reload = false;
    for (Event e : ReadSignals()) {
      if (e == Event::kStop || e == Event::kDrain) stop = true;
      if (e == Event::kDrain) readiness_delay = true;
      if (e == Event::kReload) reload = true;
    }
    ReapChildren();
    if (n == 2 && (fds[1].revents & POLLIN)) {
      char buf[4096];
      while (::read(inotify_fd_.get(), buf, sizeof buf) > 0) {
      }
    }
    if (stop) break;
    if (reload) Reload();
    RunDueRestarts();
    CheckReadiness();
  }
  BeginDrain(readiness_delay);
  StopAll();
  Report('F', "the supervisor was stopped before every program was up");
  ::unlink(opts_.node.pid_file("zmailer").c_str());
  log_.Info("", StrCat("node ", opts_.node.home, " stopped"));
  return kExitOk;
}

}  // namespace

int RunSupervisor(const SupervisorOptions& opts, Logger& log) {
  Supervisor s(opts, log);
  return s.Run();
}

}  // namespace zm::zmailer
