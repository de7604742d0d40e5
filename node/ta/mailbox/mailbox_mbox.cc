// mbox delivery: dotlock + fcntl lock, `From ` line, mboxrd quoting, fsync,
// and truncation back to the old size when anything goes wrong, so a
// mailbox never holds half a message.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <ctime>
#include <string>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/ta/mailbox/mailbox.h"
#include "node/ta/mailbox/mailbox_internal.h"

namespace zm::mailbox::internal {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kWriteChunk = 64 * 1024;

volatile sig_atomic_t g_alarm_fired = 0;
void OnAlarm(int) { g_alarm_fired = 1; }

std::string ParentDir(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// `<mbox>.lock`, holding the owner's pid; removed on destruction.
class DotLock {
 public:
  enum class Outcome { kLocked, kUnsupported, kTimeout, kError };

  Outcome Acquire(const std::string& mbox, Clock::time_point deadline,
                  int stale_s, int* err) {
    path_ = mbox + ".lock";
    auto pause = std::chrono::milliseconds(10);
    for (;;) {
      int e = Create();
      if (e == 0) {
        held_ = true;
        return Outcome::kLocked;
      }
      if (e == EACCES || e == EPERM || e == EROFS) {
        // No write access to the folder (/var/mail without group mail):
        // the fcntl lock alone must do.
        return Outcome::kUnsupported;
      }
      if (e != EEXIST) {
        *err = e;
        return Outcome::kError;
      }
      if (IsStale(stale_s)) continue;
      if (Clock::now() >= deadline) return Outcome::kTimeout;
      // A dotlock announces nothing when it goes away: poll, backing off.
      auto left = deadline - Clock::now();
      ::usleep(static_cast<useconds_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(
              std::min<Clock::duration>(pause, left))
              .count()));
      pause = std::min(pause * 2, std::chrono::milliseconds(250));
    }
  }

  ~DotLock() {
    if (held_) ::unlink(path_.c_str());
  }

 private:
  // Creates the lock with its content in place: the pid is written to
  // `<mbox>.lock.<pid>`, which is then hard-linked to `<mbox>.lock`, so a
  // lock never exists empty (an agent killed between an O_EXCL create and
  // its write would leave a lock with no pid, which only ages out after
  // `stale_s`). Where the file system has no hard links, an O_EXCL create
  // followed by the write. Returns 0 or an errno (EEXIST: held).
  int Create() {
    std::string pid = StrCat(::getpid(), "\n");
    std::string tmp = StrCat(path_, ".", ::getpid());
    ::unlink(tmp.c_str());  // left by an earlier process with this pid
    int fd = ::open(tmp.c_str(),
                    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return errno;
    bool written =
        ::write(fd, pid.data(), pid.size()) == static_cast<ssize_t>(pid.size());
    ::close(fd);
    int e = !written                                  ? EIO
            : ::link(tmp.c_str(), path_.c_str()) == 0 ? 0
                                                      : errno;
    ::unlink(tmp.c_str());
    if (e != EPERM && e != EOPNOTSUPP && e != ENOSYS) return e;
    fd = ::open(path_.c_str(),
                O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return errno;
    (void)!::write(fd, pid.data(), pid.size());
    ::close(fd);
    return 0;
  }

  // Removes the lock file if its owner is gone: it names a pid that no
  // longer lives on this host (an agent killed while holding it), or it is
  // older than `stale_s` (an owner elsewhere that never came back). The
  // inode is compared before unlinking so that a lock another agent has
  // just re-created is left alone; the fcntl lock taken next guards the
  // last window.
  bool IsStale(int stale_s) {
    fs::UniqueFd fd(::open(path_.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.valid()) return errno == ENOENT;  // gone already: try again
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return false;
    bool stale = st.st_mtime + stale_s < std::time(nullptr);
    if (!stale) {
      char buf[32] = {0};
      ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
      int pid = 0;
      if (n > 0 && ParseNumber(Trim(std::string_view(buf, n)), &pid) &&
          pid > 0 && pid != ::getpid() && !Alive(pid)) {
        stale = true;
      }
    }
    struct stat now;
    if (!stale || ::lstat(path_.c_str(), &now) != 0 ||
        now.st_ino != st.st_ino || now.st_dev != st.st_dev) {
      return false;
    }
    ::unlink(path_.c_str());
    return true;
  }

  // False for a pid that is gone, and for one that is dead but not yet
  // reaped (a zombie: an agent killed while its scheduler was dying too,
  // waiting for a parent that may not come soon).
  static bool Alive(int pid) {
    if (::kill(pid, 0) != 0) return errno != ESRCH;
    auto stat = fs::ReadFile(StrCat("/proc/", pid, "/stat"), 4096);
    if (!stat.ok()) return true;  // no /proc: trust kill(2)
    size_t paren = stat->rfind(')');  // the name may hold anything
    return paren == std::string::npos || paren + 2 >= stat->size() ||
           (*stat)[paren + 2] != 'Z';
  }

  std::string path_;
  bool held_ = false;
};

// F_SETLKW on the whole file, interrupted by a timer at the deadline.
// Returns 0, ETIMEDOUT or the errno of fcntl.
int LockFile(int fd, Clock::time_point deadline) {
  struct flock fl = {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  if (::fcntl(fd, F_SETLK, &fl) == 0) return 0;
  if (errno != EACCES && errno != EAGAIN) return errno;
  auto left = std::chrono::duration_cast<std::chrono::microseconds>(
      deadline - Clock::now());
  if (left.count() <= 0) return ETIMEDOUT;
  struct sigaction sa = {}, old_sa;
  sa.sa_handler = OnAlarm;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: the timer must interrupt fcntl
  ::sigaction(SIGALRM, &sa, &old_sa);
  g_alarm_fired = 0;
  struct itimerval it = {};
  it.it_value.tv_sec = left.count() / 1000000;
  it.it_value.tv_usec = left.count() % 1000000;
  ::setitimer(ITIMER_REAL, &it, nullptr);
  int rc;
  int err = 0;
  do {
    rc = ::fcntl(fd, F_SETLKW, &fl);
    err = rc == 0 ? 0 : errno;
  } while (rc != 0 && err == EINTR && !g_alarm_fired);
  struct itimerval off = {};
  ::setitimer(ITIMER_REAL, &off, nullptr);
  ::sigaction(SIGALRM, &old_sa, nullptr);
  if (rc == 0) return 0;
  return err == EINTR ? ETIMEDOUT : err;
}

// Blocks the signals a scheduler sends to stop an agent while a message is
// being written, so SIGTERM cannot leave half of it behind.
class SignalShield {
 public:
  SignalShield() {
    sigset_t s;
    sigemptyset(&s);
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT}) sigaddset(&s, sig);
    ::sigprocmask(SIG_BLOCK, &s, &old_);
  }
  ~SignalShield() { ::sigprocmask(SIG_SETMASK, &old_, nullptr); }

 private:
  sigset_t old_;
};

// Writes the mbox form of `c` to fd: separator, quoted content, final
// blank line. `lead` goes first (newlines repairing a foreign writer's
// unterminated last message). Returns 0 or an errno.
int WriteMessage(int fd, std::string_view lead, const Content& c) {
  std::string buf(lead);
  buf += FromLine(c.sender, std::time(nullptr));
  bool at_start = true;
  auto flush = [&]() -> int {
    std::string_view rest = buf;
    while (!rest.empty()) {
      ssize_t n = ::write(fd, rest.data(), rest.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno;
      }
      rest.remove_prefix(static_cast<size_t>(n));
    }
    buf.clear();
    return 0;
  };
  AppendQuoted(c.prefix, &at_start, &buf);
  std::string_view msg = c.message;
  while (!msg.empty()) {
    // Slices end at line ends so the quoting sees whole line starts.
    size_t len = std::min(msg.size(), kWriteChunk);
    size_t nl = msg.find('\n', len - 1);
    len = nl == std::string_view::npos ? msg.size() : nl + 1;
    AppendQuoted(msg.substr(0, len), &at_start, &buf);
    msg.remove_prefix(len);
    if (buf.size() >= kWriteChunk) {
      if (int e = flush(); e != 0) return e;
    }
  }
  if (!at_start) buf += '\n';  // the message did not end its last line
  buf += '\n';                 // the blank line that ends an mbox message
  return flush();
}

}  // namespace

ta::Result DeliverMbox(const MboxRequest& req, const Content& c) {
  const std::string& path = req.path;
  const std::string& relay = req.relay;
  int flags = O_WRONLY | O_APPEND | O_NOCTTY | O_NONBLOCK | O_CLOEXEC;
  if (req.strict) flags |= O_NOFOLLOW;
  bool created = false;
  fs::UniqueFd fd(::open(path.c_str(), flags));
  if (!fd.valid() && errno == ENOENT) {
    fd.reset(::open(path.c_str(), flags | O_CREAT | O_EXCL, 0600));
    created = fd.valid();
    if (!fd.valid() && errno == EEXIST) fd.reset(::open(path.c_str(), flags));
  }
  if (!fd.valid()) {
    if (errno == ELOOP) {
      return ta::Result::Error("5.2.0", relay,
                               StrCat("mailbox ", path, " is a symbolic link"));
    }
    return ErrnoResult(errno, "open", path, relay);
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0)
    return ErrnoResult(errno, "fstat", path, relay);
  bool plain = S_ISREG(st.st_mode) && (!req.strict || st.st_nlink == 1);
  if (!plain && !(S_ISCHR(st.st_mode) && !req.strict)) {
    return ta::Result::Error("5.2.0", relay,
                             StrCat("mailbox ", path, " is not a plain file"));
  }
  ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK);
  std::string ok_text = relay == "file" ? StrCat("delivered to file: ", path)
                                        : "delivered to mailbox";
  if (S_ISCHR(st.st_mode)) {  // /dev/null and friends: no locks, no size
    if (int e = WriteMessage(fd.get(), "", c); e != 0) {
      return ErrnoResult(e, "write", path, relay);
    }
    return ta::Result::Ok("2.0.0", relay, ok_text);
  }
  if (created) {
    if (req.owner.set && ::geteuid() == 0) {
      if (::fchown(fd.get(), req.owner.uid, req.owner.gid) != 0) {
        int e = errno;
        ::unlink(path.c_str());
        return ErrnoResult(e, "fchown", path, relay);
      }
    }
    if (auto s = fs::FsyncDir(ParentDir(path)); !s.ok()) {
      return ta::Result::Deferred("4.3.0", relay, Message(s));
    }
  }

  auto deadline = Clock::now() + std::chrono::seconds(req.lock_timeout_s);
  DotLock dotlock;
  int err = 0;
  switch (dotlock.Acquire(path, deadline, req.dotlock_stale_s, &err)) {
    case DotLock::Outcome::kLocked:
    case DotLock::Outcome::kUnsupported:
      break;
    case DotLock::Outcome::kTimeout:
      return ta::Result::Deferred(
          "4.2.0", relay,
          StrCat("mailbox ", path, " is locked (", path, ".lock held for ",
                 req.lock_timeout_s, " s)"));
    case DotLock::Outcome::kError:
      return ErrnoResult(err, "create", path + ".lock", relay);
  }
  if (int e = LockFile(fd.get(), deadline); e != 0) {
    if (e == ETIMEDOUT) {
      return ta::Result::Deferred(
          "4.2.0", relay,
          StrCat("mailbox ", path, " is locked (waited ", req.lock_timeout_s,
                 " s)"));
    }
    return ErrnoResult(e, "lock", path, relay);
  }

  // Under the lock, the size is ours to restore if anything fails.
  if (::fstat(fd.get(), &st) != 0)
    return ErrnoResult(errno, "fstat", path, relay);
  off_t old_size = st.st_size;
  std::string lead;
  if (old_size > 0) {
    char tail[2] = {0, 0};
    off_t from = old_size >= 2 ? old_size - 2 : 0;
    ssize_t n = ::pread(fd.get(), tail, sizeof tail, from);
    if (n == 2) {
      if (tail[1] != '\n') {
        lead = "\n\n";
      } else if (tail[0] != '\n') {
        lead = "\n";
      }
    } else if (n == 1 && tail[0] != '\n') {
      lead = "\n\n";
    } else if (n == 1) {
      lead = "\n";
    }
  }
  SignalShield shield;
  int e = WriteMessage(fd.get(), lead, c);
  const char* what = "write";
  if (e == 0 && ::fsync(fd.get()) != 0) {
    e = errno;
    what = "fsync";
  }
  if (e != 0) {
    if (::ftruncate(fd.get(), old_size) != 0 || ::fsync(fd.get()) != 0) {
      return ta::Result::Deferred(
          "4.3.0", relay,
          StrCat(what, " ", path,
                 " failed and the partial message could not "
                 "be removed: ",
                 std::strerror(errno)));
    }
    return ErrnoResult(e, what, path, relay);
  }
  return ta::Result::Ok("2.0.0", relay, ok_text);
}

}  // namespace zm::mailbox::internal
