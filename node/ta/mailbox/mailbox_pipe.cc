// |command delivery: /bin/sh -c command with the message on stdin, bounded
// in time, sysexits mapped to results.
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/ta/mailbox/mailbox_internal.h"

namespace zm::mailbox::internal {
namespace {

using Clock = std::chrono::steady_clock;

// Output kept for the diagnostic; the rest is read and dropped.
constexpr size_t kMaxOutput = 4096;

struct SysExit {
  int code;
  const char* name;
  bool temporary;
  const char* dsn;
};

// sysexits.h, and what each means for the recipient.
constexpr SysExit kSysExits[] = {
    {64, "EX_USAGE", false, "5.3.0"},    {65, "EX_DATAERR", false, "5.6.0"},
    {66, "EX_NOINPUT", false, "5.3.0"},  {67, "EX_NOUSER", false, "5.1.1"},
    {68, "EX_NOHOST", false, "5.1.2"},   {69, "EX_UNAVAILABLE", false, "5.3.0"},
    {70, "EX_SOFTWARE", false, "5.3.0"}, {71, "EX_OSERR", true, "4.3.0"},
    {72, "EX_OSFILE", false, "5.3.0"},   {73, "EX_CANTCREAT", false, "5.2.0"},
    {74, "EX_IOERR", true, "4.3.0"},     {75, "EX_TEMPFAIL", true, "4.3.0"},
    {76, "EX_PROTOCOL", false, "5.5.0"}, {77, "EX_NOPERM", false, "5.7.0"},
    {78, "EX_CONFIG", true, "4.3.5"},
};

int RemainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                  deadline - Clock::now())
                  .count();
  if (left <= 0) return 0;
  return left > 60000 ? 60000 : static_cast<int>(left);
}

int PidfdOpen(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
  errno = ENOSYS;
  return -1;
#endif
}

std::string FirstLine(std::string_view out) {
  std::string_view t = Trim(out);
  auto nl = t.find('\n');
  return std::string(Trim(t.substr(0, nl)));
}

}  // namespace

ta::Result DeliverPipe(const PipeRequest& req, const Content& c) {
  const std::string relay = "pipe";
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0) return ErrnoResult(errno, "pipe", "", relay);
  if (::pipe2(out, O_CLOEXEC) != 0) {
    int e = errno;
    ::close(in[0]);
    ::close(in[1]);
    return ErrnoResult(e, "pipe", "", relay);
  }
  fs::UniqueFd to_child(in[1]), from_child(out[0]);
  fs::UniqueFd child_in(in[0]), child_out(out[1]);

  // Everything the child needs is prepared before fork().
  std::vector<char*> envp;
  for (const std::string& e : req.env)
    envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  bool drop = req.run_as.set && ::geteuid() == 0;

  pid_t pid = ::fork();
  if (pid < 0) return ErrnoResult(errno, "fork", "", relay);
  if (pid == 0) {
    ::setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGPIPE, SIGXFSZ, SIGALRM, SIGTERM, SIGINT, SIGHUP}) {
      ::signal(sig, SIG_DFL);
    }
    if (::dup2(child_in.get(), 0) < 0 || ::dup2(child_out.get(), 1) < 0 ||
        ::dup2(child_out.get(), 2) < 0) {
      ::_exit(75);
    }
    if (::chdir(req.cwd.c_str()) != 0 && ::chdir("/") != 0) ::_exit(75);
    if (drop) {
      gid_t g = req.run_as.gid;
      if (::setgroups(1, &g) != 0 || ::setgid(req.run_as.gid) != 0 ||
          ::setuid(req.run_as.uid) != 0) {
        static const char kMsg[] = "mailbox: cannot change user\n";
        (void)!::write(2, kMsg, sizeof kMsg - 1);
        ::_exit(75);
      }
    }
    ::execle("/bin/sh", "sh", "-c", req.command.c_str(),
             static_cast<char*>(nullptr), envp.data());
    static const char kMsg[] = "mailbox: cannot run /bin/sh\n";
    (void)!::write(2, kMsg, sizeof kMsg - 1);
    ::_exit(75);
  }
  child_in.reset();
  child_out.reset();
  ::fcntl(to_child.get(), F_SETFL, O_NONBLOCK);
  ::fcntl(from_child.get(), F_SETFL, O_NONBLOCK);
  fs::UniqueFd pidfd(PidfdOpen(pid));

  auto deadline = Clock::now() + std::chrono::seconds(req.timeout_s);
  std::string_view parts[2] = {c.prefix, c.message};
  int part = 0;
  std::string output;
  bool exited = false;
  int wstatus = 0;
  bool timed_out = false;
  for (;;) {
    while (part < 2 && parts[part].empty()) ++part;
    if (part == 2 && to_child.valid()) to_child.reset();  // EOF to the child
    if (!from_child.valid() && !to_child.valid()) break;
    struct pollfd p[2];
    int n = 0;
    if (to_child.valid()) p[n++] = {to_child.get(), POLLOUT, 0};
    if (from_child.valid()) p[n++] = {from_child.get(), POLLIN, 0};
    int ms = RemainingMs(deadline);
    if (ms == 0) {
      timed_out = true;
      break;
    }
    int rc = ::poll(p, static_cast<nfds_t>(n), ms);
    if (rc < 0 && errno != EINTR) break;
    if (rc <= 0) continue;
    for (int i = 0; i < n; ++i) {
      if (p[i].revents == 0) continue;
      if (p[i].fd == to_child.get()) {
        ssize_t w = ::write(to_child.get(), parts[part].data(),
                            std::min<size_t>(parts[part].size(), 65536));
        if (w > 0) {
          parts[part].remove_prefix(static_cast<size_t>(w));
        } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
          // The command stopped reading (EPIPE): its exit status decides.
          to_child.reset();
          part = 2;
        }
      } else {
        char buf[4096];
        ssize_t r = ::read(from_child.get(), buf, sizeof buf);
        if (r > 0) {
          size_t keep =
              std::min(static_cast<size_t>(r),
                       kMaxOutput - std::min(kMaxOutput, output.size()));
          output.append(buf, keep);
        } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
          from_child.reset();
        }
      }
    }
  }
  // Output closed: wait for the exit, still within the deadline (a command
  // may close its output and go on running).
  while (!timed_out && !exited) {
    pid_t w = ::waitpid(pid, &wstatus, WNOHANG);
    if (w == pid) {
      exited = true;
      break;
    }
    if (w < 0 && errno != EINTR) break;
    int ms = RemainingMs(deadline);
    if (ms == 0) {
      timed_out = true;
      break;
    }
    if (pidfd.valid()) {
      struct pollfd p = {pidfd.get(), POLLIN, 0};
      ::poll(&p, 1, ms);
    } else {
      ::usleep(10000);  // no pidfd (old kernel): poll the exit status
    }
  }
  if (timed_out) {
    ::kill(-pid, SIGKILL);
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
    return ta::Result::Deferred(
        "4.3.0", relay,
        StrCat("command timed out after ", req.timeout_s, " s: ", req.command));
  }
  if (!exited) {
    while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
  }
  std::string first = FirstLine(output);
  if (WIFSIGNALED(wstatus)) {
    return ta::Result::Deferred(
        "4.3.0", relay,
        first.empty() ? StrCat("command killed by signal ", WTERMSIG(wstatus))
                      : first);
  }
  int code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 75;
  if (code == 0) {
    return ta::Result::Ok("2.0.0", relay,
                          StrCat("delivered to command: ", req.command));
  }
  for (const SysExit& se : kSysExits) {
    if (se.code != code) continue;
    std::string diag =
        first.empty() ? StrCat("command failed with ", se.name, " (", code, ")")
                      : first;
    return se.temporary ? ta::Result::Deferred(se.dsn, relay, diag)
                        : ta::Result::Error(se.dsn, relay, diag);
  }
  return ta::Result::Error(
      "5.3.0", relay,
      first.empty() ? StrCat("command failed with exit status ", code) : first);
}

}  // namespace zm::mailbox::internal
