#include "node/admin/admin_client.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "node/admin/scheduler_auth.h"
#include "node/common/strings.h"
#include "node/config/config_file.h"

namespace zm::admin {
namespace {

constexpr int kTimeoutMs = 30'000;
constexpr size_t kMaxLine = 64 * 1024;
constexpr size_t kMaxReplyLines = 1'000'000;

}  // namespace

std::string MailSockSpec(const NodeDir& node) {
  std::string spec = "UNIX:" + node.run() + "/mailq.sock";
  auto lines = config::ReadLines(node.etc_file("scheduler.conf"));
  if (!lines.ok()) return spec;
  for (const auto& l : *lines) {
    std::string_view t = l.text;
    if (!ConsumePrefix(&t, "PARAMmailsock")) continue;
    t = Trim(t);
    if (!t.empty() && t[0] == '=') t = Trim(t.substr(1));
    if (t.size() >= 2 && t.front() == '"' && t.back() == '"') {
      t = t.substr(1, t.size() - 2);
    }
    auto v = config::ExpandVariables(t, node);
    if (v.ok() && !v->empty()) spec = *v;
  }
  return spec;
}

absl::StatusOr<std::unique_ptr<AdminClient>> AdminClient::Connect(
    const NodeDir& node, std::string user, std::string password) {
  return ConnectTo(MailSockSpec(node), std::move(user), std::move(password));
}

absl::StatusOr<std::unique_ptr<AdminClient>> AdminClient::ConnectTo(
    std::string_view spec, std::string user, std::string password) {
  fs::UniqueFd fd;
  std::string where(spec);
  if (StartsWithIgnoreCase(spec, "UNIX:")) {
    std::string path(spec.substr(5));
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (path.size() >= sizeof sa.sun_path) {
      return absl::InvalidArgumentError(StrCat("socket path too long: ", path));
    }
    std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
    fd.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return fs::ErrnoStatus("socket", path, errno);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      return absl::UnavailableError(
          StrCat("scheduler is not running (cannot connect to ", path, ": ",
                 std::strerror(errno), ")"));
    }
  } else if (StartsWithIgnoreCase(spec, "TCP:")) {
    std::string rest(spec.substr(4));
    std::string host = "127.0.0.1", port = rest;
    size_t colon = rest.rfind(':');
    if (colon != std::string::npos) {
      host = rest.substr(0, colon);
      port = rest.substr(colon + 1);
    }
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || !res) {
      return absl::InvalidArgumentError(StrCat("bad admin address ", spec));
    }
    int err = 0;
    for (addrinfo* ai = res; ai; ai = ai->ai_next) {
      fd.reset(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0));
      if (fd.valid() && ::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) == 0) {
        err = 0;
        break;
      }
      err = errno;
      fd.reset();
    }
    ::freeaddrinfo(res);
    if (!fd.valid()) {
      return absl::UnavailableError(
          StrCat("scheduler is not running (cannot connect to ", spec, ": ",
                 std::strerror(err), ")"));
    }
  } else {
    return absl::InvalidArgumentError(
        StrCat("bad admin socket '", spec, "' (UNIX:/path or TCP:port)"));
  }
  std::unique_ptr<AdminClient> c(new AdminClient(std::move(fd)));
  auto greeting = c->ReadLine();
  if (!greeting.ok()) return greeting.status();
  std::vector<std::string_view> w = SplitWhitespace(*greeting);
  if (w.size() < 4 || w[0] != "version") {
    return absl::UnavailableError(
        StrCat("unexpected admin greeting: ", *greeting));
  }
  std::string challenge(w.back());
  std::string auth =
      StrCat("AUTH ", user, " ", Md5Hex(challenge + password), "\n");
  if (auto s = fs::WriteAll(c->fd_.get(), auth, where); !s.ok()) return s;
  auto reply = c->ReadLine();
  if (!reply.ok()) return reply.status();
  if (reply->empty() || (*reply)[0] != '+') {
    std::string_view text = *reply;
    if (!text.empty() && text[0] == '-') text = Trim(text.substr(1));
    return absl::PermissionDeniedError(StrCat("admin login refused: ", text));
  }
  return c;
}

AdminClient::~AdminClient() = default;

absl::StatusOr<std::string> AdminClient::ReadLine() {
  while (true) {
    size_t nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      return line;
    }
    if (buffer_.size() > kMaxLine) {
      return absl::DataLossError("admin reply line too long");
    }
    pollfd p{fd_.get(), POLLIN, 0};
    int r = ::poll(&p, 1, kTimeoutMs);
    if (r == 0) return absl::DeadlineExceededError("scheduler did not answer");
    if (r < 0) {
      if (errno == EINTR) continue;
      return fs::ErrnoStatus("poll", "admin socket", errno);
    }
    char buf[8192];
    ssize_t n = ::read(fd_.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return fs::ErrnoStatus("read", "admin socket", errno);
    }
    if (n == 0)
      return absl::UnavailableError("scheduler closed the connection");
    buffer_.append(buf, static_cast<size_t>(n));
  }
}

absl::Status AdminClient::ReadStatusLine() {
  auto first = ReadLine();
  if (!first.ok()) return first.status();
  if (first->empty() || (*first)[0] != '+') {
    std::string_view text = *first;
    if (!text.empty() && text[0] == '-') text = Trim(text.substr(1));
    return absl::FailedPreconditionError(std::string(text));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> AdminClient::Command(
    std::string_view line) {
  if (line.find('\n') != std::string_view::npos || line.size() > 4096) {
    return absl::InvalidArgumentError("bad admin command");
  }
  if (auto s = fs::WriteAll(fd_.get(), StrCat(line, "\n"), "admin socket");
      !s.ok()) {
    return s;
  }
  if (auto s = ReadStatusLine(); !s.ok()) return s;
  std::vector<std::string> out;
  while (true) {
    auto l = ReadLine();
    if (!l.ok()) return l.status();
    if (*l == ".") break;
    if (!l->empty() && (*l)[0] == '.') l->erase(0, 1);  // dot-stuffing
    out.push_back(std::move(*l));
    if (out.size() > kMaxReplyLines)
      return absl::DataLossError("admin reply too long");
  }
  return out;
}

absl::Status AdminClient::WatchEvents() {
  if (auto s = fs::WriteAll(fd_.get(), "WATCH EVENTS\n", "admin socket");
      !s.ok()) {
    return s;
  }
  if (auto s = ReadStatusLine(); !s.ok()) return s;
  return absl::OkStatus();
}

absl::StatusOr<std::string> AdminClient::NextEvent() {
  auto l = ReadLine();
  if (!l.ok()) return l.status();
  std::string_view v = *l;
  if (!ConsumePrefix(&v, "event ")) {
    return absl::DataLossError(StrCat("not an event line: ", *l));
  }
  return std::string(v);
}

}  // namespace zm::admin
