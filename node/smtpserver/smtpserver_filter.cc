// The content filter: a pool of long-running filter processes, one
// request line and one answer line per message.
#include "node/smtpserver/smtpserver_filter.h"

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <optional>
#include <chrono>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "node/common/strings.h"

extern char** environ;

namespace zm::smtpserver {
namespace {

using Clock = std::chrono::steady_clock;
using Outcome = FilterResult::Outcome;

constexpr size_t kMaxAnswer = 4096;  // longest answer line we read
constexpr size_t kMaxText = 200;     // longest filter text put in a reply

FilterResult TempFail(std::string why) {
  return FilterResult{Outcome::kTempFail, 451, "4.7.1", std::move(why)};
}

// Printable ASCII only, bounded: the text goes into an SMTP reply.
std::string CleanText(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (out.size() >= kMaxText) break;
    unsigned char u = static_cast<unsigned char>(c);
    out += (u >= 0x20 && u < 0x7f) ? c : ' ';
  }
  return std::string(Trim(out));
}

bool IsReplyCode(std::string_view s) {
  return s.size() == 3 && s[0] >= '2' && s[0] <= '5' &&
         std::isdigit(static_cast<unsigned char>(s[1])) &&
         std::isdigit(static_cast<unsigned char>(s[2]));
}

// "5.7.1": class digit, then two numbers.
bool IsEnhanced(std::string_view s, char cls) {
  std::vector<std::string_view> parts = Split(s, '.');
  if (parts.size() != 3 || parts[0].size() != 1 || parts[0][0] != cls) {
    return false;
  }
  for (int i = 1; i < 3; ++i) {
    if (parts[i].empty() || parts[i].size() > 3) return false;
    for (char c : parts[i]) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    }
  }
  return true;
}

// Takes the first word off `s`.
std::string_view NextWord(std::string_view* s) {
  *s = Trim(*s);
  size_t end = s->find_first_of(" \t");
  std::string_view word = s->substr(0, end);
  *s = end == std::string_view::npos ? std::string_view() : s->substr(end);
  *s = Trim(*s);
  return word;
}

struct Proc {
  pid_t pid = -1;
  int fd = -1;
  std::string buf;  // read but not yet consumed
};

void Reap(Proc& p, bool hard) {
  if (p.fd >= 0) close(p.fd);
  p.fd = -1;
  if (p.pid <= 0) return;
  // The filter leads its own process group: its children (a shell
  // script's commands) go with it.
  if (hard) kill(-p.pid, SIGKILL);
  // A filter leaves on EOF; one that does not gets SIGKILL after ~1 s.
  for (int i = 0; i < 100; ++i) {
    if (waitpid(p.pid, nullptr, WNOHANG) != 0) {
      p.pid = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(-p.pid, SIGKILL);
  waitpid(p.pid, nullptr, 0);
  p.pid = -1;
}

enum class ReadResult { kLine, kTimeout, kEof, kTooLong, kError };

// Reads the next line that does not start with '#', up to `deadline`.
ReadResult ReadAnswer(Proc& p, Clock::time_point deadline, std::string* line) {
  for (;;) {
    size_t nl;
    while ((nl = p.buf.find('\n')) != std::string::npos) {
      std::string l = p.buf.substr(0, nl);
      p.buf.erase(0, nl + 1);
      if (!l.empty() && l.back() == '\r') l.pop_back();
      if (!l.empty() && l[0] == '#') continue;  // "#hungry" and comments
      *line = std::move(l);
      return ReadResult::kLine;
    }
    if (p.buf.size() > kMaxAnswer) return ReadResult::kTooLong;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - Clock::now());
    if (left.count() <= 0) return ReadResult::kTimeout;
    pollfd pfd{p.fd, POLLIN, 0};
    int r = poll(&pfd, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return ReadResult::kError;
    if (r == 0) return ReadResult::kTimeout;
    char chunk[1024];
    ssize_t n = recv(p.fd, chunk, sizeof chunk, MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return ReadResult::kError;
    if (n == 0) return ReadResult::kEof;
    p.buf.append(chunk, static_cast<size_t>(n));
  }
}

// Writes all of `data` by `deadline`; false if the filter is gone or slow.
bool SendAll(Proc& p, std::string_view data, Clock::time_point deadline) {
  while (!data.empty()) {
    ssize_t n = send(p.fd, data.data(), data.size(),
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) return false;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd pfd{p.fd, POLLOUT, 0};
    if (poll(&pfd, 1, static_cast<int>(left.count())) == 0) return false;
  }
  return true;
}

// An idle process is usable if it has not exited and said nothing but
// '#' lines since its last answer.
bool StillGood(Proc& p) {
  for (int round = 0; round < 16; ++round) {
    pollfd pfd{p.fd, POLLIN, 0};
    if (poll(&pfd, 1, 0) <= 0) break;
    char chunk[1024];
    ssize_t n = recv(p.fd, chunk, sizeof chunk, MSG_DONTWAIT);
    if (n == 0) return false;
    if (n < 0) break;
    p.buf.append(chunk, static_cast<size_t>(n));
  }
  size_t nl;
  while ((nl = p.buf.find('\n')) != std::string::npos) {
    if (p.buf[0] != '#') return false;
    p.buf.erase(0, nl + 1);
  }
  return p.buf.empty() || p.buf[0] == '#';
}

class PoolFilter : public ContentFilter {
 public:
  PoolFilter(FilterOptions options, std::vector<std::string> argv,
             Logger& log)
      : options_(std::move(options)), argv_(std::move(argv)), log_(log) {}

  ~PoolFilter() override {
    absl::MutexLock lock(&mu_);
    for (Proc& p : idle_) Reap(p, /*hard=*/false);
    idle_.clear();
  }

  FilterResult Check(const std::string& message_path,
                     const std::string& queue_id) override {
    if (message_path.find_first_of(" \t\r\n") != std::string::npos ||
        queue_id.find_first_of(" \t\r\n") != std::string::npos) {
      return TempFail("message path unfit for the content filter");
    }
    const Clock::time_point deadline =
        Clock::now() + std::chrono::seconds(options_.timeout_sec);
    std::optional<Proc> proc = Acquire(queue_id, deadline);
    if (!proc) return TempFail("content filter unavailable");

    std::string request = StrCat(message_path, " ", queue_id, "\n");
    std::string line;
    ReadResult rr = ReadResult::kError;
    if (SendAll(*proc, request, deadline)) {
      rr = ReadAnswer(*proc, deadline, &line);
    }
    FilterResult result;
    std::string why;
    switch (rr) {
      case ReadResult::kLine:
        result = ParseFilterAnswer(line);
        if (!ValidAnswer(line)) {
          why = StrCat("a garbled answer \"", CleanText(line), "\"");
        }
        break;
      case ReadResult::kTimeout:
        why = StrCat("no answer in ", options_.timeout_sec, " s");
        break;
      case ReadResult::kEof:
        why = "the filter exited";
        break;
      case ReadResult::kTooLong:
        why = "an overlong answer";
        break;
      case ReadResult::kError:
        why = "a broken connection";
        break;
    }
    if (!why.empty()) {
      log_.Warning(queue_id, StrCat("content filter pid ", proc->pid, ": ",
                                    why, "; restarting it"));
      Release(std::move(*proc), /*broken=*/true);
      return TempFail("content filter failed; try again later");
    }
    Release(std::move(*proc), /*broken=*/false);
    return result;
  }

 private:
  static bool ValidAnswer(std::string_view line) {
    std::string_view rest = line;
    return ParseInt(NextWord(&rest)).has_value();
  }

  // An idle process, or a new one while the pool is below its size;
  // waits for one to come free up to `deadline`.
  std::optional<Proc> Acquire(const std::string& queue_id,
                              Clock::time_point deadline) {
    auto free_or_room = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !idle_.empty() || running_ < options_.max_processes;
    };
    absl::Time until = absl::Now() + absl::FromChrono(deadline - Clock::now());
    for (;;) {
      std::optional<Proc> reuse;
      {
        absl::MutexLock lock(&mu_);
        if (!mu_.AwaitWithDeadline(absl::Condition(&free_or_room), until)) {
          log_.Warning(queue_id, "content filter: every process busy");
          return std::nullopt;
        }
        if (!idle_.empty()) {
          reuse = std::move(idle_.back());
          idle_.pop_back();
        } else {
          ++running_;
        }
      }
      if (!reuse) {
        std::optional<Proc> fresh = Spawn(queue_id);
        if (!fresh) {
          absl::MutexLock lock(&mu_);
          --running_;
        }
        return fresh;
      }
      if (StillGood(*reuse)) return reuse;
      log_.Warning(queue_id, StrCat("content filter pid ", reuse->pid,
                                    " went away while idle; restarting it"));
      Release(std::move(*reuse), /*broken=*/true);
    }
  }

  void Release(Proc p, bool broken) {
    if (broken) {
      Reap(p, /*hard=*/true);
      absl::MutexLock lock(&mu_);
      --running_;
      return;
    }
    absl::MutexLock lock(&mu_);
    idle_.push_back(std::move(p));
  }

  std::optional<Proc> Spawn(const std::string& queue_id) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
      log_.Error(queue_id, StrCat("content filter: socketpair: ",
                                  std::strerror(errno)));
      return std::nullopt;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, sv[1], 0);
    posix_spawn_file_actions_adddup2(&fa, sv[1], 1);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, pipe_only;
    sigemptyset(&none);
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &pipe_only);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_SETPGROUP);
    std::vector<char*> argv;
    for (std::string& a : argv_) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    int err = posix_spawn(&pid, argv[0], &fa, &attr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(sv[1]);
    if (err != 0) {
      close(sv[0]);
      log_.Error(queue_id, StrCat("content filter ", argv_[0], ": ",
                                  std::strerror(err)));
      return std::nullopt;
    }
    log_.Info(queue_id, StrCat("content filter started, pid ", pid));
    Proc p;
    p.pid = pid;
    p.fd = sv[0];
    return p;
  }

  const FilterOptions options_;
  std::vector<std::string> argv_;
  Logger& log_;
  absl::Mutex mu_;
  std::vector<Proc> idle_ ABSL_GUARDED_BY(mu_);
  int running_ ABSL_GUARDED_BY(mu_) = 0;  // idle and busy
};

}  // namespace

FilterResult ParseFilterAnswer(std::string_view line) {
  std::string_view rest = line;
  std::optional<int64_t> verdict = ParseInt(NextWord(&rest));
  if (!verdict) {
    return TempFail(StrCat("content filter answered \"", CleanText(line),
                           "\""));
  }
  if (*verdict == 0) {
    std::string text = CleanText(rest);
    return FilterResult{Outcome::kAccept, 250, "2.0.0",
                        text.empty() ? "ok" : text};
  }
  if (*verdict > 0) {
    std::string text = CleanText(rest);
    return FilterResult{Outcome::kFreeze, 250, "2.0.0",
                        text.empty() ? "frozen by the content filter" : text};
  }
  // Reject: an optional reply code (5xx, or 4xx for a temporary refusal)
  // and enhanced status code, then the text.
  FilterResult r{Outcome::kReject, 550, "5.7.1", ""};
  std::string_view probe = rest;
  std::string_view word = NextWord(&probe);
  if (IsReplyCode(word) && (word[0] == '5' || word[0] == '4')) {
    r.code = (word[0] - '0') * 100 + (word[1] - '0') * 10 + (word[2] - '0');
    if (word[0] == '4') {
      r.outcome = Outcome::kTempFail;
      r.enhanced = "4.7.1";
    }
    rest = probe;
    word = NextWord(&probe);
    if (IsEnhanced(word, static_cast<char>('0' + r.code / 100))) {
      r.enhanced = std::string(word);
      rest = probe;
    }
  }
  r.text = CleanText(rest);
  if (r.text.empty()) r.text = "rejected by the content filter";
  return r;
}

absl::StatusOr<std::unique_ptr<ContentFilter>> MakeContentFilter(
    const FilterOptions& options, Logger& log) {
  std::vector<std::string> argv;
  for (std::string_view w : SplitWhitespace(options.program)) {
    argv.emplace_back(w);
  }
  if (argv.empty()) return std::unique_ptr<ContentFilter>();
  if (argv[0][0] != '/' || access(argv[0].c_str(), X_OK) != 0) {
    return absl::InvalidArgumentError(
        StrCat("contentfilter ", argv[0], ": not an executable file "
                                          "(an absolute path is needed)"));
  }
  if (options.timeout_sec <= 0 || options.max_processes <= 0) {
    return absl::InvalidArgumentError(
        "contentfilter: timeout and pool size must be positive");
  }
  return std::unique_ptr<ContentFilter>(
      std::make_unique<PoolFilter>(options, std::move(argv), log));
}

absl::StatusOr<std::unique_ptr<ContentFilter>> MakeContentFilter(
    const ServerConfig& config, Logger& log) {
  FilterOptions options;
  options.program = config.content_filter;
  options.timeout_sec = config.content_filter_timeout_sec;
  return MakeContentFilter(options, log);
}

}  // namespace zm::smtpserver
