#include "node/admind/admind_config.h"

#include <arpa/inet.h>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/config/config_file.h"

namespace zm::admind {
namespace {

bool IsLoopback(const std::string& host) {
  in_addr a4;
  if (inet_pton(AF_INET, host.c_str(), &a4) == 1) {
    return (ntohl(a4.s_addr) >> 24) == 127;
  }
  in6_addr a6;
  if (inet_pton(AF_INET6, host.c_str(), &a6) == 1) {
    return IN6_IS_ADDR_LOOPBACK(&a6);
  }
  return host == "localhost";
}

absl::StatusOr<std::string> PathValue(std::string_view value,
                                      const NodeDir& node) {
  auto v = config::ExpandVariables(value, node);
  if (!v.ok()) return v.status();
  if (!v->empty() && (*v)[0] != '/') return node.etc_file(*v);
  return *v;
}

}  // namespace

absl::Status ParseListen(std::string_view text, std::string* host, int* port) {
  std::string_view h, p;
  if (!text.empty() && text[0] == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() ||
        text[close + 1] != ':') {
      return absl::InvalidArgumentError(
          StrCat("'", text, "' is not [IPV6]:PORT"));
    }
    h = text.substr(1, close - 1);
    p = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return absl::InvalidArgumentError(
          StrCat("'", text, "' is not ADDR:PORT"));
    }
    h = text.substr(0, colon);
    p = text.substr(colon + 1);
  }
  int n = 0;
  if (h.empty() || !ParseNumber(p, &n) || n < 1 || n > 65535) {
    return absl::InvalidArgumentError(StrCat("'", text, "' is not ADDR:PORT"));
  }
  std::string hs(h);
  in_addr a4;
  in6_addr a6;
  if (hs != "*" && hs != "localhost" &&
      inet_pton(AF_INET, hs.c_str(), &a4) != 1 &&
      inet_pton(AF_INET6, hs.c_str(), &a6) != 1) {
    return absl::InvalidArgumentError(StrCat("'", h, "' is not an IP address"));
  }
  *host = hs == "*" ? "0.0.0.0" : hs;
  *port = n;
  return absl::OkStatus();
}

bool AdminConfig::ReadNeedsAuth() const {
  switch (read_auth) {
    case ReadAuth::kYes:
      return true;
    case ReadAuth::kNo:
      return false;
    case ReadAuth::kAuto:
      return !IsLoopback(listen_host);
  }
  return true;
}

std::string AdminConfig::Url(std::string_view wildcard_host) const {
  std::string host = listen_host;
  bool wildcard = host == "0.0.0.0" || host == "::";
  if (wildcard && !wildcard_host.empty()) {
    host = std::string(wildcard_host);
  } else if (host == "0.0.0.0") {
    host = "127.0.0.1";
  } else if (host == "::") {
    host = "::1";
  }
  if (host.find(':') != std::string::npos) host = StrCat("[", host, "]");
  return StrCat(tls() ? "https" : "http", "://", host, ":", listen_port, "/");
}

absl::StatusOr<AdminConfig> ParseAdminConfig(std::string_view text,
                                             const std::string& file,
                                             const NodeDir& node) {
  AdminConfig c;
  c.auth_file = node.etc_file("scheduler.auth");
  int number = 0;
  int tls_line = 0;     // the last tls-cert/tls-key line
  int cipher_line = 0;  // the tls-cipher-list line
  for (std::string_view raw : Split(text, '\n')) {
    ++number;
    std::string line = config::StripComment(raw);
    auto w = SplitWhitespace(line);
    if (w.empty()) continue;
    auto err = [&](std::string_view what) {
      return config::Error(file, number, what);
    };
    if (w.size() != 2) {
      return err(StrCat("'", w[0], "' takes exactly one value"));
    }
    std::string_view key = w[0], value = w[1];
    auto number_in = [&](int64_t lo, int64_t hi, int64_t* out) {
      return ParseNumber(value, out) && *out >= lo && *out <= hi;
    };
    int64_t n = 0;
    if (key == "listen") {
      if (auto s = ParseListen(value, &c.listen_host, &c.listen_port);
          !s.ok()) {
        return err(Message(s));
      }
    } else if (key == "tls-cert" || key == "tls-key" || key == "auth-file") {
      if (key != "auth-file") tls_line = number;
      auto path = PathValue(value, node);
      if (!path.ok()) return err(Message(path.status()));
      (key == "tls-cert"  ? c.tls_cert
       : key == "tls-key" ? c.tls_key
                          : c.auth_file) = *path;
    } else if (key == "tls-cipher-list") {
      c.tls_cipher_list = std::string(value);
      cipher_line = number;
    } else if (key == "read-auth") {
      if (value == "yes") {
        c.read_auth = ReadAuth::kYes;
      } else if (value == "no") {
        c.read_auth = ReadAuth::kNo;
      } else if (value == "auto") {
        c.read_auth = ReadAuth::kAuto;
      } else {
        return err(StrCat("read-auth is yes, no or auto, not '", value, "'"));
      }
    } else if (key == "max-body") {
      if (!number_in(1024, 16 << 20, &n)) {
        return err("max-body is a byte count from 1024 to 16777216");
      }
      c.max_body = static_cast<size_t>(n);
    } else if (key == "max-headers") {
      if (!number_in(8, 1000, &n)) return err("max-headers is 8 to 1000");
      c.max_headers = static_cast<int>(n);
    } else if (key == "max-events-clients") {
      if (!number_in(1, 256, &n)) {
        return err("max-events-clients is 1 to 256");
      }
      c.max_events_clients = static_cast<int>(n);
    } else if (key == "json-log") {
      if (value != "yes" && value != "no") {
        return err(StrCat("json-log is yes or no, not '", value, "'"));
      }
      c.json_log = value == "yes";
    } else {
      return err(StrCat("unknown key '", key, "'"));
    }
  }
  if (c.tls_cert.empty() != c.tls_key.empty()) {
    return config::Error(file, tls_line,
                         "tls-cert and tls-key go together (both or neither)");
  }
  if (cipher_line != 0 && c.tls_cert.empty()) {
    // Silently ignored it would let an operator believe the listener
    // speaks TLS with those suites.
    return config::Error(file, cipher_line,
                         "tls-cipher-list without tls-cert and tls-key: the "
                         "listener is plain HTTP");
  }
  return c;
}

absl::StatusOr<AdminConfig> LoadAdminConfig(const NodeDir& node) {
  std::string path = node.etc_file("admin.conf");
  auto text = fs::ReadFile(path, 1 << 20);
  if (!text.ok()) {
    if (absl::IsNotFound(text.status())) {
      return ParseAdminConfig("", path, node);
    }
    return text.status();
  }
  return ParseAdminConfig(*text, path, node);
}

}  // namespace zm::admind
