// start, stop, kill, reload, freeze, thaw, status, newdb: what the
// operator types, built on the supervisor and zm::health.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>

#include "node/admind/admind_config.h"
#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/daemon/health.h"
#include "node/zmailer/commands_internal.h"
#include "node/zmailer/supervisor_internal.h"
#include "node/zmailer/zmailer.h"
#include "node/zmailer/zmailer_drain.h"

#ifdef ZM_HAVE_RELATIONS
#include "node/relations/newdb.h"
#ifdef ZM_HAVE_SMTP_POLICY
#include "node/smtpserver/smtpserver_policy.h"
#endif
#endif

namespace zm::zmailer::internal {
namespace {

using Clock = std::chrono::steady_clock;

// How long `zmailer start` waits for every program's pid file.
constexpr int kStartTimeoutMs = 30000;
// A program has 20 s to stop; the supervisor stops them one by one.
constexpr int kProgramStopMs = 20000;

int StopBoundMs(const NodeDir& node) {
  auto drain = LoadDrainSettings(node);
  if (drain.ok()) {
    return static_cast<int>(
        std::min<int64_t>(DrainBoundMs(node, *drain), 24LL * 3600 * 1000));
  }
  return kProgramStopMs *
             static_cast<int>(health::DaemonPrograms(node).size()) +
         10000;
}

int Fail(std::string_view text) {
  std::cerr << "zmailer: " << text;
  if (text.empty() || text.back() != '\n') std::cerr << "\n";
  return kExitFailure;
}

int FailStatus(const absl::Status& s) { return Fail(Message(s)); }

health::ProgramState Supervisor(const NodeDir& node) {
  return health::ReadProgramState(node, "zmailer");
}

// A program of this node, alive and really that program.
health::ProgramState Program(const NodeDir& node, const std::string& name) {
  return health::ReadProgramState(node, name);
}

// Stops a supervisor we forked (start failed): SIGTERM, then the bound.
void StopForkedSupervisor(const NodeDir& node, pid_t pid) {
  ::kill(pid, SIGTERM);
  if (!WaitForExit(pid, StopBoundMs(node))) ::kill(pid, SIGKILL);
  int status;
  ::waitpid(pid, &status, 0);
}

std::string NotReady(const NodeDir& node) {
  std::string out;
  for (const auto& p : health::DaemonPrograms(node)) {
    if (!health::ReadProgramState(node, p).running) StrAppend(&out, " ", p);
  }
  return out;
}

}  // namespace

int CmdInit(const InitOptions& opts) {
  std::string report;
  absl::Status s = InitNode(opts, &report);
  std::cout << report << std::flush;
  if (!s.ok()) return FailStatus(s);
  return kExitOk;
}

int CmdStart(const NodeDir& node, bool foreground) {
  if (auto s = RequireNode(node); !s.ok()) return FailStatus(s);
  if (fs::Exists(node.freeze_marker())) {
    return Fail("node is frozen; 'zmailer thaw' first");
  }
  if (auto sup = Supervisor(node); sup.running) {
    return Fail(StrCat("node ", node.home, " already runs (supervisor pid ",
                       sup.pid, ")"));
  }
  SupervisorOptions opts;
  opts.node = node;
  opts.programs = health::DaemonPrograms(node);
  opts.foreground = foreground;
  if (auto s = fs::MakeDirs(node.log(), 0755); !s.ok()) return FailStatus(s);

  if (foreground) {
    Logger log("zmailer", node.maillog(), /*to_stderr=*/true);
    return RunSupervisor(opts, log);
  }

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return Fail(StrCat("pipe: ", strerror(errno)));
  }
  // Keep the pipe clear of 0-2, which the supervisor points at /dev/null.
  for (int& fd : fds) {
    if (fd <= 2) {
      int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
      ::close(fd);
      fd = moved;
    }
  }
  std::cout.flush();
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) return Fail(StrCat("fork: ", strerror(errno)));
  if (pid == 0) {
    // The supervisor: its own session, no terminal, nothing on stdio.
    ::close(fds[0]);
    // Nothing the caller left open may outlive it through us (a harness
    // waiting for EOF on a pipe would wait for the node's whole life).
    ::close_range(3, static_cast<unsigned>(fds[1]) - 1, 0);
    ::close_range(static_cast<unsigned>(fds[1]) + 1, ~0U, 0);
    ::setsid();
    int null = ::open("/dev/null", O_RDWR);
    if (null >= 0) {
      for (int fd = 0; fd <= 2; ++fd) ::dup2(null, fd);
      if (null > 2) ::close(null);
    }
    opts.report_fd = fds[1];
    Logger log("zmailer", node.maillog(), /*to_stderr=*/false);
    ::_exit(RunSupervisor(opts, log));
  }
  ::close(fds[1]);
  fs::UniqueFd report(fds[0]);

  // The supervisor says "O" when every pid file is written, "F<why>" when a
  // program fails to start; EOF alone means it died itself.
  std::string msg;
  auto deadline = Clock::now() + std::chrono::milliseconds(kStartTimeoutMs);
  bool timed_out = false;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - Clock::now())
                    .count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    struct pollfd p = {report.get(), POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(left));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;
    char buf[4096];
    ssize_t r = ::read(report.get(), buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    if (msg.size() < 65536) msg.append(buf, static_cast<size_t>(r));
  }

  if (timed_out) {
    std::string waiting = NotReady(node);
    StopForkedSupervisor(node, pid);
    return Fail(StrCat("timed out after ", kStartTimeoutMs / 1000,
                       "s waiting for", waiting,
                       " to start; the node is "
                       "stopped. Last log lines:\n",
                       LastLogLines(node, "", 10, "  ")));
  }
  if (!msg.empty() && msg[0] == 'O') {
    std::cout << health::Render(health::Collect(node));
    return kExitOk;
  }
  if (!msg.empty() && msg[0] == 'F') {
    StopForkedSupervisor(node, pid);
    std::string why = msg.substr(1);
    if (!why.empty() && why.back() != '\n') why += '\n';
    return Fail(StrCat(why, "node not started"));
  }
  int status = 0;
  std::string how = "ended";
  if (::waitpid(pid, &status, 0) == pid) how = DescribeWaitStatus(status);
  return Fail(StrCat("the supervisor ", how,
                     " before the node was up. Last log lines:\n",
                     LastLogLines(node, "", 10, "  ")));
}

int CmdStop(const NodeDir& node) {
  if (auto s = RequireNode(node); !s.ok()) return FailStatus(s);
  auto sup = Supervisor(node);
  if (sup.running) {
    // SIGINT: the drain sequence without the readiness delay (SIGTERM,
    // from `zmailer drain` or an orchestrator, waits for it).
    ::kill(sup.pid, SIGINT);
    if (!WaitForExit(sup.pid, StopBoundMs(node))) {
      return Fail(StrCat("the supervisor (pid ", sup.pid,
                         ") did not stop within ", StopBoundMs(node) / 1000,
                         "s; 'zmailer kill' forces it"));
    }
    std::cout << "node " << node.home << " stopped\n";
    return kExitOk;
  }
  // No supervisor (it was killed): stop what it left behind, in order.
  std::string stopped;
  const auto programs = health::DaemonPrograms(node);
  for (auto it = programs.rbegin(); it != programs.rend(); ++it) {
    auto st = Program(node, *it);
    if (st.running) {
      ::kill(st.pid, SIGTERM);
      if (!WaitForExit(st.pid, kProgramStopMs)) {
        if (::getpgid(st.pid) == st.pid) ::kill(-st.pid, SIGKILL);
        ::kill(st.pid, SIGKILL);
        WaitForExit(st.pid, 5000);
      }
      StrAppend(&stopped, " ", *it, " (pid ", st.pid, ")");
    }
    ::unlink(node.pid_file(*it).c_str());
  }
  ::unlink(node.pid_file("zmailer").c_str());
  if (stopped.empty()) {
    std::cout << "node " << node.home << " is not running\n";
  } else {
    std::cout << "no supervisor was running; stopped" << stopped << "\n";
  }
  return kExitOk;
}

int CmdKill(const NodeDir& node) {
  if (auto s = RequireNode(node); !s.ok()) return FailStatus(s);
  std::string killed;
  std::vector<pid_t> pids;
  // The supervisor first, so it restarts nothing.
  if (auto sup = Supervisor(node); sup.running) {
    ::kill(sup.pid, SIGKILL);
    pids.push_back(sup.pid);
    StrAppend(&killed, " zmailer (pid ", sup.pid, ")");
  }
  for (const auto& p : health::DaemonPrograms(node)) {
    auto st = Program(node, p);
    if (st.running) {
      // Its process group holds the helpers it started (transport agents).
      if (::getpgid(st.pid) == st.pid) ::kill(-st.pid, SIGKILL);
      ::kill(st.pid, SIGKILL);
      pids.push_back(st.pid);
      StrAppend(&killed, " ", p, " (pid ", st.pid, ")");
    }
  }
  for (pid_t pid : pids) WaitForExit(pid, 5000);
  ::unlink(node.pid_file("zmailer").c_str());
  for (const auto& p : health::DaemonPrograms(node)) {
    ::unlink(node.pid_file(p).c_str());
  }
  if (killed.empty()) {
    std::cout << "node " << node.home << ": nothing was running\n";
  } else {
    std::cout << "killed" << killed << "\n";
  }
  return kExitOk;
}

int CmdReload(const NodeDir& node) {
  if (auto s = RequireNode(node); !s.ok()) return FailStatus(s);
  auto sup = Supervisor(node);
  if (!sup.running) return Fail(StrCat("node ", node.home, " is not running"));
  ::kill(sup.pid, SIGHUP);
  std::cout << "asked the supervisor (pid " << sup.pid
            << ") to reload every program\n";
  return kExitOk;
}

int CmdFreeze(const NodeDir& node) {
  if (auto s = RequireNode(node); !s.ok()) return FailStatus(s);
  if (auto s = fs::MakeDirs(node.run(), 0755); !s.ok()) return FailStatus(s);
  if (auto s = fs::WriteFileAtomically(
          node.run(), "frozen",
          StrCat("frozen by 'zmailer freeze' at ", std::time(nullptr), "\n"));
      !s.ok()) {
    return FailStatus(s);
  }
  std::cout << "node " << node.home << " frozen: 'zmailer start' refuses until "
            << "'zmailer thaw'\n";
  if (Supervisor(node).running) {
    std::cout << "the node is running and stays up; once stopped it will not "
                 "start again until thawed\n";
  }
  return kExitOk;
}

int CmdThaw(const NodeDir& node) {
  if (auto s = RequireNode(node); !s.ok()) return FailStatus(s);
  if (::unlink(node.freeze_marker().c_str()) != 0) {
    if (errno != ENOENT) {
      return FailStatus(fs::ErrnoStatus("unlink", node.freeze_marker(), errno));
    }
    std::cout << "node " << node.home << " was not frozen\n";
    return kExitOk;
  }
  std::cout << "node " << node.home << " thawed; 'zmailer start' starts it\n";
  return kExitOk;
}

int CmdStatus(const NodeDir& node) {
  if (auto s = RequireNode(node); !s.ok()) return FailStatus(s);
  health::NodeHealth h = health::Collect(node);
  std::cout << health::Render(h);
  if (auto admin = admind::LoadAdminConfig(node); admin.ok()) {
    std::cout << "dashboard: " << admin->Url() << "\n";
  }
  if (h.frozen) {
    std::cout << "frozen: 'zmailer start' refuses until 'zmailer thaw'\n";
  }
  size_t running = h.supervisor.running ? 1 : 0;
  for (const auto& p : h.programs) running += p.running ? 1 : 0;
  if (running == h.programs.size() + 1) return kExitOk;
  if (running == 0) return kExitNotRunning;
  return kExitFailure;  // partly up
}

int CmdNewDb(const NodeDir& node, const std::string& only) {
  if (auto s = RequireNode(node); !s.ok()) return FailStatus(s);
#ifdef ZM_HAVE_RELATIONS
  std::string report;
  absl::Status s = only == "smtp-policy" ? absl::OkStatus()
                                         : relations::NewDb(node, only, &report);
#ifdef ZM_HAVE_SMTP_POLICY
  if (s.ok() && (only.empty() || only == "smtp-policy")) {
    s = smtpserver::CompilePolicy(node, &report);  // db/smtp-policy
  }
#endif
  std::cout << report << std::flush;
  if (!s.ok()) return FailStatus(s);
  // The router re-opens swapped databases when told.
  if (auto router = Program(node, "router"); router.running) {
    ::kill(router.pid, SIGHUP);
    std::cout << "router (pid " << router.pid << ") told to reload\n";
  }
  return kExitOk;
#else
  (void)only;
  return Fail("this build has no relations library (node/relations)");
#endif
}

}  // namespace zm::zmailer::internal
