#include "node/milter/client.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "node/common/strings.h"

namespace zm::milter {
namespace {

using Clock = std::chrono::steady_clock;

// A milter may keep saying "progress" at most this often per answer.
constexpr int kMaxProgress = 1000;
// Modification requests accepted per end of message (a replaced body of
// 1 GiB in 64 KiB chunks is 16384 of them).
constexpr int kMaxModifications = 100000;

int MsLeft(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                  deadline - Clock::now())
                  .count();
  return left <= 0 ? 0 : static_cast<int>(std::min<int64_t>(left, 1 << 30));
}

absl::StatusOr<int> Seconds(std::string_view key, std::string_view v) {
  int n = 0;
  if (!ParseNumber(v, &n) || n < 1 || n > 3600) {
    return absl::InvalidArgumentError(
        StrCat(key, " needs seconds from 1 to 3600, not '", v, "'"));
  }
  return n * 1000;
}

// "inet:HOST:PORT", "inet:PORT@HOST", "inet6:[ADDR]:PORT", "inet6:PORT@ADDR"
// or "unix:PATH" (also "local:PATH").
struct Address {
  bool unix_socket = false;
  std::string host;  // or the socket path
  std::string port;
};

absl::StatusOr<Address> ParseAddress(std::string_view a) {
  Address out;
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        StrCat("milter address '", a, "': ", why));
  };
  std::string_view rest = a;
  if (ConsumePrefix(&rest, "unix:") || ConsumePrefix(&rest, "local:")) {
    if (rest.empty() || rest.front() != '/')
      return bad("needs an absolute path");
    if (rest.size() >= sizeof(sockaddr_un{}.sun_path))
      return bad("path too long");
    out.unix_socket = true;
    out.host = std::string(rest);
    return out;
  }
  if (!ConsumePrefix(&rest, "inet6:") && !ConsumePrefix(&rest, "inet:")) {
    return bad("use inet:HOST:PORT, inet6:[ADDR]:PORT or unix:PATH");
  }
  size_t at = rest.find('@');
  std::string_view host, port;
  if (at != std::string_view::npos) {  // Sendmail's PORT@HOST
    port = rest.substr(0, at);
    host = rest.substr(at + 1);
  } else {
    size_t colon = rest.rfind(':');
    if (colon == std::string_view::npos) return bad("no port");
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  int p = 0;
  if (!ParseNumber(port, &p) || p < 1 || p > 65535) return bad("bad port");
  if (host.empty()) return bad("no host");
  out.host = std::string(host);
  out.port = std::string(port);
  return out;
}

// Connects a non-blocking socket within `timeout_ms`.
absl::StatusOr<int> ConnectSocket(const Address& a, int timeout_ms) {
  Clock::time_point deadline =
      Clock::now() + std::chrono::milliseconds(timeout_ms);
  std::vector<std::pair<sockaddr_storage, socklen_t>> targets;
  int family = AF_UNIX;
  if (a.unix_socket) {
    sockaddr_storage ss{};
    auto* un = reinterpret_cast<sockaddr_un*>(&ss);
    un->sun_family = AF_UNIX;
    std::memcpy(un->sun_path, a.host.c_str(), a.host.size() + 1);
    targets.emplace_back(ss, static_cast<socklen_t>(sizeof(sockaddr_un)));
  } else {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* res = nullptr;
    int rc = ::getaddrinfo(a.host.c_str(), a.port.c_str(), &hints, &res);
    if (rc != 0) {
      return absl::UnavailableError(
          StrCat("cannot resolve ", a.host, ": ", ::gai_strerror(rc)));
    }
    for (addrinfo* i = res; i && targets.size() < 8; i = i->ai_next) {
      sockaddr_storage ss{};
      std::memcpy(&ss, i->ai_addr, i->ai_addrlen);
      targets.emplace_back(ss, i->ai_addrlen);
    }
    ::freeaddrinfo(res);
  }
  std::string last = "no address";
  for (auto& [ss, len] : targets) {
    family = ss.ss_family;
    int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
      return absl::UnavailableError(StrCat("socket: ", strerror(errno)));
    int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&ss), len);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      rc = ::poll(&p, 1, MsLeft(deadline));
      int err = ETIMEDOUT;
      if (rc == 1) {
        socklen_t elen = sizeof err;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
      }
      rc = err == 0 ? 0 : -1;
      errno = err;
    }
    if (rc == 0) return fd;
    last = strerror(errno);
    ::close(fd);
  }
  return absl::UnavailableError(StrCat("connect: ", last));
}

}  // namespace

absl::StatusOr<Spec> ParseSpec(std::string_view value) {
  auto words = SplitWhitespace(value);
  if (words.size() < 2) {
    return absl::InvalidArgumentError(
        "milter needs a name and an address (inet:HOST:PORT or unix:PATH)");
  }
  Spec s;
  s.name = std::string(words[0]);
  s.address = std::string(words[1]);
  if (auto a = ParseAddress(s.address); !a.ok()) return a.status();
  for (size_t i = 2; i < words.size(); ++i) {
    std::string_view w = words[i];
    size_t eq = w.find('=');
    if (eq == std::string_view::npos) {
      return absl::InvalidArgumentError(
          StrCat("milter option '", w, "' needs key=value"));
    }
    std::string_view key = w.substr(0, eq), v = w.substr(eq + 1);
    if (key == "timeout" || key == "connect-timeout" || key == "eom-timeout") {
      auto ms = Seconds(key, v);
      if (!ms.ok()) return ms.status();
      (key == "timeout"           ? s.reply_timeout_ms
       : key == "connect-timeout" ? s.connect_timeout_ms
                                  : s.eom_timeout_ms) = *ms;
    } else if (key == "default") {
      if (v == "tempfail") {
        s.on_failure = Spec::Default::kTempFail;
      } else if (v == "accept") {
        s.on_failure = Spec::Default::kAccept;
      } else {
        return absl::InvalidArgumentError(
            StrCat("milter default= takes tempfail or accept, not '", v, "'"));
      }
    } else if (key == "listeners") {
      for (auto l : Split(v, ',', true)) {
        std::string name = ToLower(l);
        if (name != "smtp" && name != "submission" && name != "smtps") {
          return absl::InvalidArgumentError(
              StrCat("milter listeners= takes smtp, submission, smtps, not '",
                     l, "'"));
        }
        s.listeners.push_back(name);
      }
      if (s.listeners.empty()) {
        return absl::InvalidArgumentError("milter listeners= is empty");
      }
    } else {
      return absl::InvalidArgumentError(
          StrCat("unknown milter option '", key, "'"));
    }
  }
  return s;
}

Client::Client(Spec spec) : spec_(std::move(spec)) {}

Client::~Client() { Close(); }

void Client::Close(bool abort_first) {
  if (fd_ < 0) return;
  std::string quit = EncodeSimple(cmd::kQuit);
  if (abort_first) quit = EncodeSimple(cmd::kAbort) + quit;
  // Best effort, never waits: the socket is non-blocking.
  (void)!::send(fd_, quit.data(), quit.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  ::close(fd_);
  fd_ = -1;
  reader_ = PacketReader();
}

Result Client::Fail(std::string why) {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  reader_ = PacketReader();
  Result r;
  r.action = Result::Action::kFailed;
  r.error = std::move(why);
  return r;
}

absl::Status Client::Open() {
  Close();
  auto addr = ParseAddress(spec_.address);
  if (!addr.ok()) return addr.status();
  auto fd = ConnectSocket(*addr, spec_.connect_timeout_ms);
  if (!fd.ok()) return fd.status();
  fd_ = *fd;
  std::string neg = EncodeOptNeg(kVersion, action::kAll, step::kOffered);
  if (auto st = Send(neg, spec_.connect_timeout_ms); !st.ok()) {
    Fail("");
    return st;
  }
  auto r = Receive(spec_.connect_timeout_ms);
  if (!r.ok()) {
    Fail("");
    return r.status();
  }
  if (r->kind != Response::Kind::kOptNeg) {
    Fail("");
    return absl::UnavailableError("no option negotiation answer");
  }
  if (r->version < 2 || r->version > kVersion) {
    Fail("");
    return absl::UnavailableError(
        StrCat("milter speaks protocol version ", r->version));
  }
  // The milter may only ask for what we offered.
  if ((r->actions & ~action::kAll) || (r->steps & ~step::kOffered)) {
    Fail("");
    return absl::UnavailableError(
        fmt::format("milter wants actions {:#x} steps {:#x}, beyond what was "
                    "offered",
                    r->actions, r->steps));
  }
  actions_ = r->actions;
  steps_ = r->steps;
  return absl::OkStatus();
}

absl::Status Client::Send(std::string_view bytes, int timeout_ms) {
  if (fd_ < 0) return absl::UnavailableError("not connected");
  Clock::time_point deadline =
      Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd_, POLLOUT, 0};
      int rc = ::poll(&p, 1, MsLeft(deadline));
      if (rc == 0) return absl::DeadlineExceededError("write timeout");
      if (rc < 0 && errno != EINTR) {
        return absl::UnavailableError(StrCat("poll: ", strerror(errno)));
      }
      continue;
    }
    return absl::UnavailableError(StrCat("write: ", strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<Response> Client::Receive(int timeout_ms) {
  if (fd_ < 0) return absl::UnavailableError("not connected");
  Clock::time_point deadline =
      Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    Packet p;
    switch (reader_.Next(&p)) {
      case PacketReader::kPacket:
        return DecodeResponse(p);
      case PacketReader::kError:
        return absl::InvalidArgumentError("malformed milter packet length");
      case PacketReader::kNeedMore:
        break;
    }
    pollfd pf{fd_, POLLIN, 0};
    int left = MsLeft(deadline);
    int rc = left > 0 ? ::poll(&pf, 1, left) : 0;
    if (rc == 0) {
      return absl::DeadlineExceededError(
          StrCat("no answer within ", timeout_ms / 1000, "s"));
    }
    if (rc < 0) {
      if (errno == EINTR) continue;
      return absl::UnavailableError(StrCat("poll: ", strerror(errno)));
    }
    char buf[16384];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n == 0) return absl::UnavailableError("milter closed the connection");
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      return absl::UnavailableError(StrCat("read: ", strerror(errno)));
    }
    reader_.Feed(std::string_view(buf, static_cast<size_t>(n)));
  }
}

Result Client::Answer(
    int timeout_ms,
    const std::function<absl::Status(const Modification&)>* on_mod) {
  int progress = 0, mods = 0;
  for (;;) {
    auto r = Receive(timeout_ms);
    if (!r.ok()) return Fail(Message(r.status()));
    Result out;
    switch (r->kind) {
      case Response::Kind::kContinue:
        return out;
      case Response::Kind::kAccept:
        out.action = Result::Action::kAccept;
        return out;
      case Response::Kind::kReject:
        out.action = Result::Action::kReject;
        return out;
      case Response::Kind::kTempFail:
        out.action = Result::Action::kTempFail;
        return out;
      case Response::Kind::kDiscard:
        out.action = Result::Action::kDiscard;
        return out;
      case Response::Kind::kSkip:
        out.action = Result::Action::kSkip;
        return out;
      case Response::Kind::kConnFail:
        return Fail("milter asked to drop the connection");
      case Response::Kind::kReplyCode:
        out.action = r->code >= 500 ? Result::Action::kReject
                                    : Result::Action::kTempFail;
        out.code = r->code;
        out.enhanced = r->enhanced;
        out.text = r->text;
        return out;
      case Response::Kind::kProgress:
        if (++progress > kMaxProgress) return Fail("endless progress");
        break;
      case Response::Kind::kOptNeg:
        return Fail("unexpected option negotiation");
      case Response::Kind::kModification: {
        if (!on_mod) return Fail("modification outside end of message");
        if (++mods > kMaxModifications) return Fail("too many modifications");
        absl::Status st = (*on_mod)(r->mod);
        if (!st.ok()) return Fail(Message(st));
        break;
      }
    }
  }
}

Result Client::Stage(const Macros& macros, char command, std::string packet,
                     uint32_t no_step, uint32_t no_reply_step) {
  if (fd_ < 0) return Fail("not connected");
  if (no_step && (steps_ & no_step)) return Result{};
  std::string out;
  if (!macros.empty()) out = EncodeMacros(command, macros);
  out += packet;
  if (auto st = Send(out, spec_.reply_timeout_ms); !st.ok()) {
    return Fail(Message(st));
  }
  if (no_reply_step && (steps_ & no_reply_step)) return Result{};
  return Answer(spec_.reply_timeout_ms, nullptr);
}

Result Client::Connect(const Macros& macros, std::string_view hostname,
                       char family, uint16_t port, std::string_view address) {
  return Stage(macros, cmd::kConnect,
               EncodeConnect(hostname, family, port, address), step::kNoConnect,
               step::kNrConnect);
}

Result Client::Helo(const Macros& macros, std::string_view name) {
  return Stage(macros, cmd::kHelo, EncodeHelo(name), step::kNoHelo,
               step::kNrHelo);
}

Result Client::Mail(const Macros& macros, std::string_view path,
                    const std::vector<std::string>& params) {
  return Stage(macros, cmd::kMail, EncodeMail(path, params), step::kNoMail,
               step::kNrMail);
}

Result Client::Rcpt(const Macros& macros, std::string_view path,
                    const std::vector<std::string>& params) {
  return Stage(macros, cmd::kRcpt, EncodeRcpt(path, params), step::kNoRcpt,
               step::kNrRcpt);
}

Result Client::Data(const Macros& macros) {
  // Version 2 milters do not know the DATA command.
  return Stage(macros, cmd::kData, EncodeSimple(cmd::kData), step::kNoData,
               step::kNrData);
}

Result Client::Header(std::string_view name, std::string_view value) {
  if (!leading_space()) {
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
      value.remove_prefix(1);
    }
  }
  return Stage({}, cmd::kHeader, EncodeHeader(name, value), step::kNoHeaders,
               step::kNrHeader);
}

Result Client::EndOfHeaders(const Macros& macros) {
  return Stage(macros, cmd::kEoh, EncodeSimple(cmd::kEoh), step::kNoEoh,
               step::kNrEoh);
}

Result Client::Body(std::string_view chunk) {
  return Stage({}, cmd::kBody, EncodeSimple(cmd::kBody, chunk), step::kNoBody,
               step::kNrBody);
}

Result Client::EndOfMessage(
    const Macros& macros,
    const std::function<absl::Status(const Modification&)>& on_mod) {
  if (fd_ < 0) return Fail("not connected");
  std::string out;
  if (!macros.empty()) out = EncodeMacros(cmd::kEom, macros);
  out += EncodeSimple(cmd::kEom);
  if (auto st = Send(out, spec_.eom_timeout_ms); !st.ok()) {
    return Fail(Message(st));
  }
  return Answer(spec_.eom_timeout_ms, &on_mod);
}

void Client::Abort() {
  if (fd_ < 0) return;
  std::string a = EncodeSimple(cmd::kAbort);
  if (!Send(a, spec_.reply_timeout_ms).ok()) Fail("abort not sent");
}

}  // namespace zm::milter
