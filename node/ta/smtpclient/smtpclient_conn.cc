// Connection: a non-blocking socket driven with poll(2) deadlines, with
// optional TLS on top (OpenSSL), and bounded reply reading.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/ta/smtpclient/smtpclient.h"

namespace zm::smtpclient {
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Waits until `fd` is ready for `events` or the deadline passes.
absl::Status WaitFd(int fd, short events, int64_t deadline_ms,
                    std::string_view what) {
  for (;;) {
    int64_t left = deadline_ms - NowMs();
    if (left <= 0) {
      return absl::DeadlineExceededError(StrCat("timeout ", what));
    }
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 1 << 30)));
    if (n < 0) {
      if (errno == EINTR) continue;
      return fs::ErrnoStatus("poll", "connection", errno);
    }
    if (n > 0) return absl::OkStatus();
  }
}

std::string SslError() {
  unsigned long e = ERR_get_error();
  if (e == 0) return "TLS failure";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

// Waits for a non-blocking connect(2); closes `fd` on failure.
absl::Status Finish(int fd, int64_t deadline, std::string_view peer) {
  absl::Status w = WaitFd(fd, POLLOUT, deadline, "connecting");
  if (!w.ok()) {
    ::close(fd);
    return absl::DeadlineExceededError(
        StrCat("connect to ", peer, " timed out"));
  }
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) {
    ::close(fd);
    return absl::UnavailableError(
        StrCat("connect to ", peer, ": ", std::strerror(err)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Connection>> Connection::ConnectTcp(
    const std::string& ip, int port, int timeout_ms) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (::inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    len = sizeof *v4;
  } else if (::inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    len = sizeof *v6;
  } else {
    return absl::InvalidArgumentError(StrCat("not an IP address: ", ip));
  }
  int fd =
      ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return fs::ErrnoStatus("socket", ip, errno);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  std::string peer = StrCat("[", ip, "]:", port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 &&
      errno != EINPROGRESS) {
    int e = errno;
    ::close(fd);
    return absl::UnavailableError(
        StrCat("connect to ", peer, ": ", std::strerror(e)));
  }
  auto done = Finish(fd, NowMs() + timeout_ms, peer);
  if (!done.ok()) return done;
  return std::unique_ptr<Connection>(new Connection(fd));
}

absl::StatusOr<std::unique_ptr<Connection>> Connection::ConnectUnix(
    const std::string& path, int timeout_ms) {
  sockaddr_un sun{};
  if (path.size() >= sizeof sun.sun_path) {
    return absl::InvalidArgumentError(StrCat("socket path too long: ", path));
  }
  sun.sun_family = AF_UNIX;
  std::memcpy(sun.sun_path, path.data(), path.size());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return fs::ErrnoStatus("socket", path, errno);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sun), sizeof sun) != 0 &&
      errno != EINPROGRESS && errno != EAGAIN) {
    int e = errno;
    ::close(fd);
    return absl::UnavailableError(
        StrCat("connect to ", path, ": ", std::strerror(e)));
  }
  auto done = Finish(fd, NowMs() + timeout_ms, path);
  if (!done.ok()) return done;
  return std::unique_ptr<Connection>(new Connection(fd));
}

Connection::~Connection() {
  if (ssl_ != nullptr) SSL_free(ssl_);
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
  if (fd_ >= 0) ::close(fd_);
}

absl::Status Connection::Write(std::string_view data, int timeout_ms) {
  int64_t deadline = NowMs() + timeout_ms;
  while (!data.empty()) {
    if (ssl_ != nullptr) {
      ERR_clear_error();
      int n =
          SSL_write(ssl_, data.data(),
                    static_cast<int>(std::min<size_t>(data.size(), 1 << 20)));
      if (n > 0) {
        data.remove_prefix(static_cast<size_t>(n));
        continue;
      }
      int e = SSL_get_error(ssl_, n);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        auto w = WaitFd(fd_, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
                        deadline, "sending");
        if (!w.ok()) return w;
        continue;
      }
      return absl::UnavailableError(StrCat("TLS write: ", SslError()));
    }
    ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      auto w = WaitFd(fd_, POLLOUT, deadline, "sending");
      if (!w.ok()) return w;
      continue;
    }
    return absl::UnavailableError(
        StrCat("lost connection while sending: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> Connection::ReadSome(char* buf, size_t n,
                                            int64_t deadline_ms) {
  for (;;) {
    if (ssl_ != nullptr) {
      ERR_clear_error();
      int got = SSL_read(ssl_, buf, static_cast<int>(n));
      if (got > 0) return static_cast<size_t>(got);
      int e = SSL_get_error(ssl_, got);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        auto w = WaitFd(fd_, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
                        deadline_ms, "waiting for a reply");
        if (!w.ok()) return w;
        continue;
      }
      if (e == SSL_ERROR_ZERO_RETURN) {
        return absl::UnavailableError("connection closed by the peer");
      }
      return absl::UnavailableError(StrCat("TLS read: ", SslError()));
    }
    ssize_t got = ::recv(fd_, buf, n, 0);
    if (got > 0) return static_cast<size_t>(got);
    if (got == 0)
      return absl::UnavailableError("connection closed by the peer");
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      auto w = WaitFd(fd_, POLLIN, deadline_ms, "waiting for a reply");
      if (!w.ok()) return w;
      continue;
    }
    return absl::UnavailableError(
        StrCat("lost connection: ", std::strerror(errno)));
  }
}

absl::StatusOr<std::string> Connection::ReadLine(size_t max, int timeout_ms) {
  int64_t deadline = NowMs() + timeout_ms;
  for (;;) {
    size_t nl = rbuf_.find('\n');
    if (nl != std::string::npos) {
      if (nl > max + 1) {
        return absl::OutOfRangeError("over-long reply line");
      }
      std::string line = rbuf_.substr(0, nl);
      rbuf_.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      return line;
    }
    if (rbuf_.size() > max + 1) {
      return absl::OutOfRangeError("over-long reply line");
    }
    char chunk[4096];
    auto n = ReadSome(chunk, sizeof chunk, deadline);
    if (!n.ok()) return n.status();
    rbuf_.append(chunk, *n);
  }
}

absl::StatusOr<Reply> Connection::ReadReply(int timeout_ms) {
  int64_t deadline = NowMs() + timeout_ms;
  ReplyParser parser;
  while (!parser.Done()) {
    int64_t left = deadline - NowMs();
    if (left <= 0)
      return absl::DeadlineExceededError("timeout waiting for a reply");
    auto line = ReadLine(kMaxReplyLine, static_cast<int>(left));
    if (!line.ok()) return line.status();
    if (auto s = parser.Feed(*line); !s.ok()) return s;
  }
  return parser.Take();
}

absl::Status Connection::StartTls(const TlsOptions& options, int timeout_ms) {
  if (ssl_ != nullptr) return absl::FailedPreconditionError("TLS already on");
  if (!rbuf_.empty()) {
    // Plain text bytes after the 220 would be taken as encrypted: refuse.
    return absl::UnavailableError("peer sent data after its STARTTLS reply");
  }
  verify_error_.clear();
  bool dane = !options.dane.empty();
  bool check = !dane && (options.verify || options.check_only);
  ctx_ = SSL_CTX_new(TLS_client_method());
  if (ctx_ == nullptr) return absl::InternalError(SslError());
  SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
  if (check) {
    int ok = options.ca_file.empty()
                 ? SSL_CTX_set_default_verify_paths(ctx_)
                 : SSL_CTX_load_verify_locations(ctx_, options.ca_file.c_str(),
                                                 nullptr);
    if (ok != 1) {
      return absl::FailedPreconditionError(
          StrCat("CA file ", options.ca_file, ": ", SslError()));
    }
  }
  if (dane && SSL_CTX_dane_enable(ctx_) <= 0) {
    return absl::InternalError(StrCat("DANE: ", SslError()));
  }
  bool enforce = dane || (options.verify && !options.check_only);
  SSL_CTX_set_verify(ctx_, enforce ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
                     nullptr);
  ssl_ = SSL_new(ctx_);
  if (ssl_ == nullptr) return absl::InternalError(SslError());
  SSL_set_fd(ssl_, fd_);
  if (!options.sni.empty()) {
    SSL_set_tlsext_host_name(ssl_, options.sni.c_str());
  }
  if (dane) {
    const char* base =
        options.dane_names.empty() ? nullptr : options.dane_names[0].c_str();
    if (SSL_dane_enable(ssl_, base) <= 0) {
      return absl::InternalError(StrCat("DANE: ", SslError()));
    }
    for (size_t i = 1; i < options.dane_names.size(); ++i) {
      SSL_add1_host(ssl_, options.dane_names[i].c_str());
    }
    // RFC 7672 section 3.1.1: DANE-EE(3) matches say nothing of names.
    SSL_dane_set_flags(ssl_, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
    int usable = 0;
    for (const TlsaRecord& t : options.dane) {
      int r = SSL_dane_tlsa_add(
          ssl_, static_cast<uint8_t>(t.usage), static_cast<uint8_t>(t.selector),
          static_cast<uint8_t>(t.mtype),
          reinterpret_cast<const unsigned char*>(t.data.data()), t.data.size());
      if (r > 0) ++usable;
      ERR_clear_error();
    }
    if (usable == 0) {
      return absl::FailedPreconditionError("DANE: no usable TLSA record");
    }
  } else if (check && !options.verify_name.empty()) {
    SSL_set_hostflags(ssl_, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    SSL_set1_host(ssl_, options.verify_name.c_str());
  }
  int64_t deadline = NowMs() + timeout_ms;
  for (;;) {
    ERR_clear_error();
    int r = SSL_connect(ssl_);
    if (r == 1) break;
    int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      auto w = WaitFd(fd_, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
                      deadline, "in the TLS handshake");
      if (!w.ok()) return w;
      continue;
    }
    long v = SSL_get_verify_result(ssl_);
    std::string why =
        v != X509_V_OK
            ? StrCat(dane ? "no TLSA record matches the certificate: "
                          : "certificate verification failed: ",
                     X509_verify_cert_error_string(v))
            : SslError();
    return absl::UnavailableError(StrCat("TLS handshake: ", why));
  }
  if (check) {
    long v = SSL_get_verify_result(ssl_);
    if (SSL_get0_peer_certificate(ssl_) == nullptr) {
      verify_error_ = "no certificate";
    } else if (v != X509_V_OK) {
      verify_error_ = X509_verify_cert_error_string(v);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Connection::ReadToEnd(size_t max, int timeout_ms) {
  int64_t deadline = NowMs() + timeout_ms;
  std::string out = std::move(rbuf_);
  rbuf_.clear();
  for (;;) {
    if (out.size() > max) return absl::OutOfRangeError("answer too long");
    char chunk[4096];
    // The end of the data: the peer closed (with or without a TLS
    // close_notify); the caller checks the length it was promised.
    auto n = ReadSome(chunk, sizeof chunk, deadline);
    if (!n.ok()) {
      ERR_clear_error();
      if (absl::IsUnavailable(n.status())) return out;
      return n.status();
    }
    out.append(chunk, *n);
  }
}

std::string Connection::DaneMatch() const {
  if (ssl_ == nullptr) return "";
  uint8_t usage = 0, selector = 0, mtype = 0;
  const unsigned char* data = nullptr;
  size_t len = 0;
  if (SSL_get0_dane_tlsa(ssl_, &usage, &selector, &mtype, &data, &len) < 0 ||
      data == nullptr) {
    return "";
  }
  TlsaRecord t{usage, selector, mtype,
               std::string(reinterpret_cast<const char*>(data), len)};
  return t.Text();
}

std::string TlsaRecord::Text() const {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(data.size() * 2);
  for (unsigned char c : data) {
    hex += kHex[c >> 4];
    hex += kHex[c & 15];
  }
  return StrCat(usage, " ", selector, " ", mtype, " ", hex);
}

std::string Connection::TlsInfo() const {
  if (ssl_ == nullptr) return "";
  return StrCat(SSL_get_version(ssl_), " ", SSL_get_cipher_name(ssl_));
}

}  // namespace zm::smtpclient
