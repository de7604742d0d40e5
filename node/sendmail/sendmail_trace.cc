// sendmail -v: follow one message through log/maillog and copy its lines to
// the caller, as ZMailer's sendmail copies the message's trace. The log is
// watched with inotify, so the wait costs nothing while nothing happens.
#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/sendmail/sendmail.h"

namespace zm::sendmail {
namespace {

constexpr size_t kMaxLogLine = 64 * 1024;

// What one log line about the message says about its progress.
struct Tracker {
  int nrcpt = -1;
  int statuses = 0;
  bool removed = false;

  void See(std::string_view text) {  // text after "QID: "
    if (text.starts_with("removed")) removed = true;
    if (size_t p = text.find("nrcpt="); p != std::string_view::npos) {
      std::string_view n = text.substr(p + 6);
      n = n.substr(0, n.find_first_not_of("0123456789"));
      int v;
      if (ParseNumber(n, &v)) nrcpt = v;
    }
    if (size_t p = text.find("status="); p != std::string_view::npos) {
      std::string_view s = text.substr(p + 7);
      for (std::string_view w : {"sent", "bounced", "deferred", "expired"}) {
        if (s.starts_with(w)) ++statuses;
      }
    }
  }
  bool Done() const { return removed || (nrcpt > 0 && statuses >= nrcpt); }
};

}  // namespace

bool FollowMessage(const std::string& maillog, uint64_t start,
                   std::string_view queue_id, int timeout_ms, int out_fd) {
  fs::UniqueFd fd(::open(maillog.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return false;
  fs::UniqueFd watch(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
  if (!watch.valid() ||
      ::inotify_add_watch(watch.get(), maillog.c_str(), IN_MODIFY) < 0) {
    return false;
  }
  if (::lseek(fd.get(), static_cast<off_t>(start), SEEK_SET) < 0) return false;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  const std::string tag = StrCat(" ", queue_id, ": ");
  Tracker tracker;
  std::string pending;
  char buf[16 * 1024];
  for (;;) {
    // Everything written so far.
    for (;;) {
      ssize_t n = ::read(fd.get(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      pending.append(buf, static_cast<size_t>(n));
      size_t pos = 0;
      for (size_t nl; (nl = pending.find('\n', pos)) != std::string::npos;
           pos = nl + 1) {
        std::string_view line(pending.data() + pos, nl - pos);
        size_t at = line.find(tag);
        if (at == std::string_view::npos) continue;
        (void)fs::WriteAll(out_fd, StrCat(line, "\n"), "stderr");
        tracker.See(line.substr(at + tag.size()));
        if (tracker.Done()) return true;
      }
      pending.erase(0, pos);
      if (pending.size() > kMaxLogLine) pending.clear();  // not a real line
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    struct pollfd p = {watch.get(), POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno != EINTR) return false;
    if (r > 0) {
      while (::read(watch.get(), buf, sizeof buf) > 0) {
      }
    }
  }
}

}  // namespace zm::sendmail
