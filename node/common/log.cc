#include "node/common/log.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

#include "node/common/fs.h"

namespace zm {

Logger::Logger(std::string program, std::string path, bool to_stderr)
    : program_(std::move(program)),
      path_(std::move(path)),
      to_stderr_(to_stderr) {
  char host[256] = {0};
  if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  hostname_ = host[0] ? host : "localhost";
  if (auto dot = hostname_.find('.'); dot != std::string::npos) {
    hostname_.resize(dot);
  }
  (void)Reopen();
}

Logger::~Logger() {
  absl::MutexLock lock(&mu_);
  if (fd_ >= 0) ::close(fd_);
}

absl::Status Logger::Reopen() {
  if (path_.empty()) return absl::OkStatus();
  int fd =
      ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) return fs::ErrnoStatus("open", path_, errno);
  absl::MutexLock lock(&mu_);
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
  return absl::OkStatus();
}

void Logger::Log(LogLevel level, std::string_view queue_id,
                 std::string_view text) {
  struct timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  ::localtime_r(&ts.tv_sec, &tm);
  char stamp[32];
  size_t n = std::strftime(stamp, sizeof stamp, "%b %e %H:%M:%S", &tm);
  std::string line;
  line.reserve(96 + text.size());
  line += fmt::format("{} {} zmnode/{}[{}]: ", std::string_view(stamp, n),
                      hostname_, program_, ::getpid());
  if (level == LogLevel::kWarning) line += "warning: ";
  if (level == LogLevel::kError) line += "error: ";
  if (!queue_id.empty()) line.append(queue_id).append(": ");
  // One event, one line: a newline inside the text (say, a peer's reply)
  // must not start a line that a parser would take for a new event.
  for (char c : text) line += (c == '\n' || c == '\r') ? ' ' : c;
  line += '\n';
  {
    absl::MutexLock lock(&mu_);
    if (fd_ >= 0) (void)fs::WriteAll(fd_, line, path_);
  }
  if (to_stderr_) (void)fs::WriteAll(2, line, "stderr");
}

}  // namespace zm
