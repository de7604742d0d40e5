#include "node/daemon/daemon.h"

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "node/common/strings.h"
#include "node/daemon/privileges.h"

namespace zm {

absl::StatusOr<std::unique_ptr<Daemon>> Daemon::Init(std::string program,
                                                     int argc, char** argv) {
  std::unique_ptr<Daemon> d(new Daemon());
  d->program_ = std::move(program);
  std::string dir;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-C") {
      if (i + 1 >= argc)
        return absl::InvalidArgumentError("-C needs a directory");
      dir = argv[++i];
    } else if (a == "-f") {
      d->foreground_ = true;
    } else {
      d->args_.push_back(std::move(a));
    }
  }
  d->node_ = LocateNode(dir);
  if (auto s = RequireNode(d->node_); !s.ok()) return s;
  d->log_ =
      std::make_unique<Logger>(d->program_, d->node_.maillog(), d->foreground_);

  ::signal(SIGPIPE, SIG_IGN);
  // A capability the supervisor handed on (CAP_NET_BIND_SERVICE to bind a
  // port, CAP_SETUID to run agents as others) stays with this program:
  // what it runs (agents, filters, pipes) does not inherit it.
  privileges::ClearInheritance();
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGUSR1}) sigaddset(&set, sig);
  if (::pthread_sigmask(SIG_BLOCK, &set, nullptr) != 0) {
    return absl::InternalError("cannot block signals");
  }
  d->signal_fd_.reset(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!d->signal_fd_.valid()) return fs::ErrnoStatus("signalfd", "", errno);
  return d;
}

int Daemon::Fail(std::string_view program, const absl::Status& status) {
  std::fprintf(stderr, "%.*s: %.*s\n", static_cast<int>(program.size()),
               program.data(), static_cast<int>(status.message().size()),
               status.message().data());
  return 1;
}

Daemon::~Daemon() {
  if (wrote_pid_) ::unlink(node_.pid_file(program_).c_str());
}

Daemon::Signal Daemon::TakeSignal() {
  struct signalfd_siginfo si;
  ssize_t n = ::read(signal_fd_.get(), &si, sizeof si);
  if (n != sizeof si) return Signal::kNone;
  switch (si.ssi_signo) {
    case SIGTERM:
    case SIGINT:
      return Signal::kStop;
    case SIGHUP:
    case SIGUSR1:
      return Signal::kReload;
    default:
      return Signal::kNone;
  }
}

absl::Status Daemon::Ready() {
  if (auto s = fs::MakeDirs(node_.run()); !s.ok()) return s;
  std::string name = program_ + ".pid";
  if (auto s =
          fs::WriteFileAtomically(node_.run(), name, StrCat(::getpid(), "\n"));
      !s.ok()) {
    return s;
  }
  wrote_pid_ = true;
  return absl::OkStatus();
}

}  // namespace zm
