// Process helpers for the supervisor and the control subcommands.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <thread>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/zmailer/supervisor_internal.h"

namespace zm::zmailer::internal {

bool WaitForExit(pid_t pid, int timeout_ms) {
  using Clock = std::chrono::steady_clock;
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  auto left_ms = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                 Clock::now())
        .count();
  };
  // A pidfd turns readable when the process exits, child of ours or not.
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd >= 0) {
    fs::UniqueFd pidfd(fd);
    for (;;) {
      int64_t left = left_ms();
      if (left <= 0) return false;
      struct pollfd p = {pidfd.get(), POLLIN, 0};
      int n = ::poll(&p, 1, static_cast<int>(left));
      if (n > 0) return true;
      if (n < 0 && errno != EINTR) break;
    }
  } else if (errno == ESRCH) {
    return true;
  }
  // Old kernels: ask again and again, briefly.
  while (::kill(pid, 0) == 0 || errno == EPERM) {
    if (left_ms() <= 0) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status))
    return StrCat("exited with status ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    const char* name = ::strsignal(sig);
    return StrCat("was killed by signal ", sig, " (",
                  name != nullptr ? name : "?", ")");
  }
  return StrCat("ended with wait status ", status);
}

namespace {

std::string LastLines(std::string_view text, int max_lines,
                      std::string_view indent,
                      std::string_view must_contain = "") {
  std::deque<std::string_view> lines;
  for (std::string_view line : Split(text, '\n')) {
    if (Trim(line).empty()) continue;
    if (!must_contain.empty() &&
        line.find(must_contain) == std::string_view::npos) {
      continue;
    }
    lines.push_back(line);
    if (static_cast<int>(lines.size()) > max_lines) lines.pop_front();
  }
  std::string out;
  for (auto l : lines) StrAppend(&out, indent, l, "\n");
  return out;
}

// Up to `max_bytes` from the end of the file, not before `offset`.
std::string ReadEnd(const std::string& path, off_t offset, size_t max_bytes) {
  fs::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return "";
  struct stat st;
  if (::fstat(fd.get(), &st) != 0 || st.st_size <= offset) return "";
  off_t start =
      std::max<off_t>(offset, st.st_size - static_cast<off_t>(max_bytes));
  std::string buf(static_cast<size_t>(st.st_size - start), '\0');
  ssize_t n = ::pread(fd.get(), buf.data(), buf.size(), start);
  if (n <= 0) return "";
  buf.resize(static_cast<size_t>(n));
  return buf;
}

}  // namespace

std::string TailOf(const std::string& path, off_t offset, int max_lines,
                   std::string_view indent) {
  return LastLines(ReadEnd(path, offset, 4096), max_lines, indent);
}

std::string LastLogLines(const NodeDir& node, std::string_view program,
                         int max_lines, std::string_view indent) {
  std::string marker = program.empty() ? "" : StrCat("zmnode/", program, "[");
  return LastLines(ReadEnd(node.maillog(), 0, 64 * 1024), max_lines, indent,
                   marker);
}

}  // namespace zm::zmailer::internal
