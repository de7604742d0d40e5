// AUTH backends: a crypt(3) credentials file and ZMailer's SMTP-auth-pipe.
#include "node/smtpserver/smtpserver_auth.h"

#include <crypt.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/config/config_file.h"

namespace zm::smtpserver {
namespace {

using Clock = std::chrono::steady_clock;

// Longest user name and password taken at all (RFC 4954 has no limit; a
// line of the session is bounded anyway).
constexpr size_t kMaxCredential = 1024;

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  // The length of a crypt(3) result is public (it follows the prefix).
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return diff == 0;
}

// The crypt(3) prefixes accepted in the credentials file.
bool KnownHashPrefix(std::string_view h) {
  return h.starts_with("$6$") || h.starts_with("$5$") || h.starts_with("$y$") ||
         h.starts_with("$2b$") || h.starts_with("$2y$");
}

class FileAuthenticator : public Authenticator {
 public:
  explicit FileAuthenticator(std::map<std::string, std::string> users)
      : users_(std::move(users)) {
    // A hash to spend the same work on for unknown users.
    dummy_ = users_.empty() ? std::string("$6$zmnodedummysalt$")
                            : users_.begin()->second;
  }

  absl::StatusOr<bool> Verify(std::string_view user,
                              std::string_view password) override {
    if (user.size() > kMaxCredential || password.size() > kMaxCredential ||
        password.find('\0') != std::string_view::npos) {
      return false;
    }
    auto it = users_.find(std::string(user));
    const std::string& setting = it == users_.end() ? dummy_ : it->second;
    // struct crypt_data is large (32 KiB): on the heap, one per call.
    auto data = std::make_unique<struct crypt_data>();
    std::string pw(password);
    const char* out = ::crypt_r(pw.c_str(), setting.c_str(), data.get());
    ::explicit_bzero(pw.data(), pw.size());
    if (out == nullptr || out[0] == '*') {
      return absl::UnavailableError(
          StrCat("crypt(3) cannot hash with the setting of user ", user));
    }
    bool match = ConstantTimeEquals(out, setting);
    ::explicit_bzero(data.get(), sizeof(struct crypt_data));
    return match && it != users_.end();
  }

 private:
  std::map<std::string, std::string> users_;
  std::string dummy_;
};

int PidfdOpen(pid_t pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

class PipeAuthenticator : public Authenticator {
 public:
  PipeAuthenticator(std::string program, int timeout_sec, Logger& log)
      : program_(std::move(program)), timeout_sec_(timeout_sec), log_(log) {}

  absl::StatusOr<bool> Verify(std::string_view user,
                              std::string_view password) override {
    if (user.empty() || user.size() > kMaxCredential ||
        password.size() > kMaxCredential ||
        user.find('\0') != std::string_view::npos ||
        password.find_first_of(std::string_view("\0\n", 2)) !=
            std::string_view::npos) {
      return false;
    }
    // A socket pair, not a pipe: send() with MSG_NOSIGNAL cannot raise
    // SIGPIPE when the program exits without reading.
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
      return Fail(StrCat("socketpair: ", std::strerror(errno)));
    }
    fs::UniqueFd ours(sv[0]), theirs(sv[1]);

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_adddup2(&fa, theirs.get(), 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    sigset_t none, deflt;
    sigemptyset(&none);
    sigemptyset(&deflt);
    for (int sig : {SIGPIPE, SIGHUP, SIGTERM, SIGINT, SIGUSR1, SIGCHLD}) {
      sigaddset(&deflt, sig);
    }
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &deflt);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
    std::string user_arg(user);
    char* argv[] = {program_.data(), user_arg.data(), nullptr};
    char* envp[] = {const_cast<char*>("PATH=/usr/bin:/bin"), nullptr};
    pid_t pid = -1;
    int rc = ::posix_spawn(&pid, program_.c_str(), &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    theirs.reset();
    if (rc != 0) {
      return Fail(StrCat("cannot run ", program_, ": ", std::strerror(rc)));
    }
    fs::UniqueFd pidfd(PidfdOpen(pid));

    std::string line = StrCat(password, "\n");
    // The password fits the socket buffer; a program that does not read
    // it is judged by its exit status.
    (void)!::send(ours.get(), line.data(), line.size(),
                  MSG_NOSIGNAL | MSG_DONTWAIT);
    ::explicit_bzero(line.data(), line.size());
    ::shutdown(ours.get(), SHUT_WR);

    auto deadline = Clock::now() + std::chrono::seconds(timeout_sec_);
    int wstatus = 0;
    for (;;) {
      pid_t w = ::waitpid(pid, &wstatus, WNOHANG);
      if (w == pid) break;
      if (w < 0 && errno != EINTR) {
        return Fail(StrCat("waitpid: ", std::strerror(errno)));
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                      deadline - Clock::now())
                      .count();
      if (left <= 0) {
        ::kill(-pid, SIGKILL);
        ::kill(pid, SIGKILL);
        while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
        }
        return Fail(
            StrCat(program_, " gave no answer within ", timeout_sec_, " s"));
      }
      int ms = left > 1000 ? 1000 : static_cast<int>(left);
      if (pidfd.valid()) {
        struct pollfd p = {pidfd.get(), POLLIN, 0};
        ::poll(&p, 1, ms);
      } else {
        ::usleep(10000);  // no pidfd (old kernel): poll the exit status
      }
    }
    if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) return true;
    if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 1) return false;
    return Fail(WIFSIGNALED(wstatus)
                    ? StrCat(program_, " killed by signal ", WTERMSIG(wstatus))
                    : StrCat(program_, " exited ", WEXITSTATUS(wstatus)));
  }

 private:
  absl::Status Fail(std::string what) {
    log_.Warning("", StrCat("SMTP-auth-pipe: ", what));
    return absl::UnavailableError(what);
  }

  std::string program_;
  int timeout_sec_;
  Logger& log_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Authenticator>> MakeFileAuthenticator(
    const std::string& path) {
  auto lines = config::ReadLines(path);
  if (!lines.ok()) return lines.status();
  std::map<std::string, std::string> users;
  for (const config::Line& l : *lines) {
    std::string_view t = Trim(l.text);
    size_t colon = t.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      return config::Error(path, l.number, "expected user:hash");
    }
    std::string user(Trim(t.substr(0, colon)));
    std::string hash(Trim(t.substr(colon + 1)));
    if (!KnownHashPrefix(hash) ||
        hash.find_first_of(" \t:") != std::string::npos) {
      return config::Error(
          path, l.number,
          StrCat("the hash of '", user,
                 "' must be crypt(3) $6$, $5$, $y$ or $2b$ (e.g. from "
                 "`openssl passwd -6`)"));
    }
    if (!users.emplace(user, hash).second) {
      return config::Error(path, l.number,
                           StrCat("user '", user, "' appears twice"));
    }
  }
  return std::unique_ptr<Authenticator>(
      std::make_unique<FileAuthenticator>(std::move(users)));
}

std::unique_ptr<Authenticator> MakePipeAuthenticator(std::string program,
                                                     int timeout_sec,
                                                     Logger& log) {
  return std::make_unique<PipeAuthenticator>(std::move(program), timeout_sec,
                                             log);
}

absl::StatusOr<std::unique_ptr<Authenticator>> MakeAuthenticator(
    const ServerConfig& config, const NodeDir& node, Logger& log) {
  // $MAILVAR etc. expanded; a relative path is under etc/.
  auto resolve = [&](const std::string& raw) -> absl::StatusOr<std::string> {
    auto v = config::ExpandVariables(raw, node);
    if (!v.ok()) return v.status();
    return v->starts_with("/") ? *v : node.etc_file(*v);
  };
  if (!config.auth_pipe.empty()) {
    auto program = resolve(config.auth_pipe);
    if (!program.ok()) return program.status();
    if (::access(program->c_str(), X_OK) != 0) {
      return absl::InvalidArgumentError(
          StrCat("SMTP-auth-pipe ", *program, " is not an executable file"));
    }
    return MakePipeAuthenticator(*program, config.auth_pipe_timeout_sec, log);
  }
  if (config.auth_file.empty()) {
    std::string path = node.etc_file("smtp-auth.passwd");
    if (!fs::Exists(path)) return std::unique_ptr<Authenticator>();
    return MakeFileAuthenticator(path);
  }
  auto path = resolve(config.auth_file);
  if (!path.ok()) return path.status();
  return MakeFileAuthenticator(*path);
}

}  // namespace zm::smtpserver
