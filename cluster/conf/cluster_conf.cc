#include "cluster/conf/cluster_conf.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "node/common/strings.h"
#include "node/config/cluster_conf.h"
#include "node/config/config_file.h"

namespace zm::cluster {
namespace {

using config::Error;

// Whole file, bounded: a cluster.conf is a few hundred bytes.
constexpr size_t kMaxFileBytes = 1 << 20;

bool IsDnsName(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  for (auto label : Split(s, '.')) {
    if (label.empty() || label.size() > 63) return false;
    if (label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      if (!isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
    }
  }
  return true;
}

// A duration where a plain number counts in `plain_unit_ms`.
absl::StatusOr<int64_t> ParseDuration(std::string_view v,
                                      int64_t plain_unit_ms) {
  int64_t n = 0;
  if (ParseNumber(v, &n)) return n * plain_unit_ms;
  return config::ParseDurationMs(v);
}

// "4194304", "64k", "4M", "1G".
absl::StatusOr<int64_t> ParseBytes(std::string_view v) {
  int64_t mult = 1;
  if (!v.empty()) {
    switch (v.back()) {
      case 'k':
      case 'K':
        mult = 1 << 10;
        break;
      case 'm':
      case 'M':
        mult = 1 << 20;
        break;
      case 'g':
      case 'G':
        mult = 1 << 30;
        break;
    }
    if (mult != 1) v.remove_suffix(1);
  }
  int64_t n = 0;
  if (!ParseNumber(v, &n) || n <= 0 || n > (int64_t{1} << 40) / mult) {
    return absl::InvalidArgumentError("bad size");
  }
  return n * mult;
}

// What one line gives the parser.
struct LineCtx {
  std::string_view file;
  int number;
  std::string key;
  std::vector<std::string_view> values;
  const NodeDir& node;

  absl::Status Fail(std::string_view what) const {
    return Error(file, number, what);
  }
  absl::Status One() const {
    if (values.size() != 1) return Fail(StrCat(key, " takes one value"));
    return absl::OkStatus();
  }
};

using Handler = std::function<absl::Status(const LineCtx&, ClusterConf*)>;

Handler HostPortKey(HostPort ClusterConf::*field) {
  return [field](const LineCtx& l, ClusterConf* c) -> absl::Status {
    if (auto s = l.One(); !s.ok()) return s;
    auto hp = ParseHostPort(l.values[0]);
    if (!hp.ok()) return l.Fail(StrCat(l.key, ": ", Message(hp.status())));
    c->*field = *hp;
    return absl::OkStatus();
  };
}

Handler DnsNameKey(std::string ClusterConf::*field) {
  return [field](const LineCtx& l, ClusterConf* c) -> absl::Status {
    if (auto s = l.One(); !s.ok()) return s;
    std::string_view v = l.values[0];
    if (!v.empty() && v.back() == '.') v.remove_suffix(1);
    // SRV owners start with _service._proto labels.
    std::string_view check = v;
    while (ConsumePrefix(&check, "_")) {
      size_t dot = check.find('.');
      if (dot == std::string_view::npos) break;
      check.remove_prefix(dot + 1);
    }
    if (!IsDnsName(check)) {
      return l.Fail(StrCat(l.key, ": '", l.values[0], "' is not a DNS name"));
    }
    c->*field = std::string(v);
    return absl::OkStatus();
  };
}

Handler DurationKey(int64_t ClusterConf::*field, int64_t plain_unit_ms) {
  return [field, plain_unit_ms](const LineCtx& l,
                                ClusterConf* c) -> absl::Status {
    if (auto s = l.One(); !s.ok()) return s;
    auto ms = ParseDuration(l.values[0], plain_unit_ms);
    if (!ms.ok() || *ms <= 0) {
      return l.Fail(StrCat(l.key, " needs a positive duration, not '",
                           l.values[0], "'"));
    }
    c->*field = *ms;
    return absl::OkStatus();
  };
}

// A duration of at least `min_ms`, or "off" (and 0) for 0.
Handler DurationOrOffKey(int64_t ClusterConf::*field, int64_t plain_unit_ms,
                         int64_t min_ms) {
  return [field, plain_unit_ms, min_ms](const LineCtx& l,
                                        ClusterConf* c) -> absl::Status {
    if (auto s = l.One(); !s.ok()) return s;
    if (EqualsIgnoreCase(l.values[0], "off") || l.values[0] == "0") {
      c->*field = 0;
      return absl::OkStatus();
    }
    auto ms = ParseDuration(l.values[0], plain_unit_ms);
    if (!ms.ok() || *ms < min_ms) {
      std::string least = min_ms % 1000 == 0 ? StrCat(min_ms / 1000, "s")
                                             : StrCat(min_ms, "ms");
      return l.Fail(StrCat(l.key, " needs a duration of at least ", least,
                           " or off, not '", l.values[0], "'"));
    }
    c->*field = *ms;
    return absl::OkStatus();
  };
}

Handler CountKey(int ClusterConf::*field, int64_t max) {
  return [field, max](const LineCtx& l, ClusterConf* c) -> absl::Status {
    if (auto s = l.One(); !s.ok()) return s;
    int64_t n = 0;
    if (!ParseNumber(l.values[0], &n) || n < 1 || n > max) {
      return l.Fail(StrCat(l.key, " needs a number from 1 to ", max, ", not '",
                           l.values[0], "'"));
    }
    c->*field = static_cast<int>(n);
    return absl::OkStatus();
  };
}

Handler OptionalCountKey(std::optional<int> ClusterConf::*field, int max) {
  return [field, max](const LineCtx& l, ClusterConf* c) -> absl::Status {
    if (auto s = l.One(); !s.ok()) return s;
    int n = 0;
    if (!ParseNumber(l.values[0], &n) || n < 1 || n > max) {
      return l.Fail(StrCat(l.key, " needs a number from 1 to ", max, ", not '",
                           l.values[0], "'"));
    }
    c->*field = n;
    return absl::OkStatus();
  };
}

absl::StatusOr<std::string> ExpandPath(const LineCtx& l) {
  auto v = config::ExpandVariables(l.values[0], l.node);
  if (!v.ok()) return l.Fail(StrCat(l.key, ": ", Message(v.status())));
  if (v->empty()) return l.Fail(StrCat(l.key, " needs a path"));
  if ((*v)[0] != '/') return l.node.etc() + "/" + *v;
  return *v;
}

Handler PathKey(std::string ClusterConf::*field) {
  return [field](const LineCtx& l, ClusterConf* c) -> absl::Status {
    if (auto s = l.One(); !s.ok()) return s;
    auto p = ExpandPath(l);
    if (!p.ok()) return p.status();
    c->*field = *p;
    return absl::OkStatus();
  };
}

const std::map<std::string, Handler, std::less<>>& Handlers() {
  static const auto* table = new std::map<std::string, Handler, std::less<>>{
      {"node-id",
       [](const LineCtx& l, ClusterConf* c) -> absl::Status {
         if (auto s = l.One(); !s.ok()) return s;
         if (!IsDnsName(l.values[0])) {
           return l.Fail(StrCat("node-id '", l.values[0],
                                "' must be a DNS name (letters, digits, '-', "
                                "'.'): it names the node's certificate"));
         }
         c->node_id = std::string(l.values[0]);
         return absl::OkStatus();
       }},
      {"gossip-listen", HostPortKey(&ClusterConf::gossip_listen)},
      {"advertise", HostPortKey(&ClusterConf::advertise)},
      {"seed",
       [](const LineCtx& l, ClusterConf* c) -> absl::Status {
         for (auto v : l.values) {
           auto hp = ParseHostPort(v);
           if (!hp.ok()) return l.Fail(StrCat("seed: ", Message(hp.status())));
           c->seeds.push_back(*hp);
         }
         return absl::OkStatus();
       }},
      {"seed-dns", DnsNameKey(&ClusterConf::seed_dns)},
      {"seed-srv", DnsNameKey(&ClusterConf::seed_srv)},
      {"seed-refresh", DurationKey(&ClusterConf::seed_refresh_ms, 1000)},
      {"gossip-interval", DurationKey(&ClusterConf::gossip_interval_ms, 1)},
      {"fanout", CountKey(&ClusterConf::fanout, 64)},
      {"probe-interval", DurationKey(&ClusterConf::probe_interval_ms, 1)},
      {"probe-timeout", DurationKey(&ClusterConf::probe_timeout_ms, 1)},
      {"indirect-probes", CountKey(&ClusterConf::indirect_probes, 16)},
      {"suspicion-min", DurationKey(&ClusterConf::suspicion_min_ms, 1)},
      {"suspicion-max", DurationKey(&ClusterConf::suspicion_max_ms, 1)},
      {"full-sync-interval",
       DurationOrOffKey(&ClusterConf::full_sync_interval_ms, 1000, 1000)},
      {"tls-cert", PathKey(&ClusterConf::tls_cert)},
      {"tls-key", PathKey(&ClusterConf::tls_key)},
      {"tls-ca", PathKey(&ClusterConf::tls_ca)},
      {"max-message-bytes",
       [](const LineCtx& l, ClusterConf* c) -> absl::Status {
         if (auto s = l.One(); !s.ok()) return s;
         auto n = ParseBytes(l.values[0]);
         if (!n.ok() || *n < 4096) {
           return l.Fail(StrCat("max-message-bytes needs a size of at least "
                                "4096 (k, M, G suffixes), not '",
                                l.values[0], "'"));
         }
         c->max_message_bytes = *n;
         return absl::OkStatus();
       }},
      {"local-socket",
       [](const LineCtx& l, ClusterConf* c) -> absl::Status {
         if (auto s = l.One(); !s.ok()) return s;
         auto p = ExpandPath(l);
         if (!p.ok()) return p.status();
         // sockaddr_un::sun_path is 108 bytes with the NUL.
         if (p->size() > 107) {
           return l.Fail(StrCat("local-socket path is longer than 107 bytes: ",
                                *p));
         }
         c->local_socket = *p;
         return absl::OkStatus();
       }},
      {"rate-slots", OptionalCountKey(&ClusterConf::rate_slots, 1000)},
      {"rate-slot-seconds",
       OptionalCountKey(&ClusterConf::rate_slot_seconds, 86400)},
      {"policy-tombstone-horizon",
       DurationKey(&ClusterConf::policy_tombstone_horizon_ms, 1000)},
  };
  return *table;
}

}  // namespace

std::string HostPort::ToString() const {
  if (host.find(':') != std::string::npos) {
    return StrCat("[", host, "]:", port);
  }
  return StrCat(host, ":", port);
}

bool HostPort::IsWildcard() const {
  return host.empty() || host == "0.0.0.0" || host == "::" || host == "*";
}

absl::StatusOr<HostPort> ParseHostPort(std::string_view text) {
  HostPort hp;
  std::string_view host, port;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() ||
        text[close + 1] != ':') {
      return absl::InvalidArgumentError(
          StrCat("'", text, "' is not [address]:port"));
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    in6_addr a6;
    if (inet_pton(AF_INET6, std::string(host).c_str(), &a6) != 1) {
      return absl::InvalidArgumentError(
          StrCat("'", host, "' is not an IPv6 address"));
    }
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return absl::InvalidArgumentError(StrCat("'", text, "' is not host:port"));
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return absl::InvalidArgumentError(
          StrCat("'", text, "': write an IPv6 address as [address]:port"));
    }
    if (host.empty()) {
      return absl::InvalidArgumentError(StrCat("'", text, "' has no host"));
    }
    in_addr a4;
    bool numeric = !host.empty() &&
                   std::all_of(host.begin(), host.end(), [](char c) {
                     return isdigit(static_cast<unsigned char>(c)) || c == '.';
                   });
    if (numeric && inet_pton(AF_INET, std::string(host).c_str(), &a4) != 1) {
      return absl::InvalidArgumentError(
          StrCat("'", host, "' is not an IPv4 address"));
    }
    if (!numeric && host != "*" && !IsDnsName(host)) {
      return absl::InvalidArgumentError(
          StrCat("'", host, "' is neither an address nor a host name"));
    }
  }
  uint32_t p = 0;
  if (!ParseNumber(port, &p) || p == 0 || p > 65535) {
    return absl::InvalidArgumentError(
        StrCat("'", port, "' is not a port (1-65535)"));
  }
  hp.host = std::string(host);
  hp.port = static_cast<uint16_t>(p);
  return hp;
}

absl::StatusOr<ClusterConf> ParseClusterConf(std::string_view text,
                                             std::string_view filename,
                                             const NodeDir& node) {
  ClusterConf c;
  std::map<std::string, int, std::less<>> seen;  // key -> line
  int number = 0;
  for (auto raw : Split(text, '\n')) {
    ++number;
    if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
    std::string line = config::StripComment(raw);
    auto tok = SplitWhitespace(line);
    if (tok.empty()) continue;
    LineCtx l{filename, number, std::string(tok[0]), {}, node};
    l.values.assign(tok.begin() + 1, tok.end());
    auto h = Handlers().find(l.key);
    if (h == Handlers().end()) {
      return l.Fail(StrCat("unknown key '", l.key, "'"));
    }
    if (l.values.empty()) return l.Fail(StrCat(l.key, " needs a value"));
    if (l.key != "seed" && seen.count(l.key)) {
      return l.Fail(StrCat(l.key, " is already set on line ", seen[l.key]));
    }
    seen.emplace(l.key, number);
    if (auto s = h->second(l, &c); !s.ok()) return s;
  }
  auto line_of = [&](std::string_view key) {
    auto it = seen.find(key);
    return it == seen.end() ? 0 : it->second;
  };
  auto fail_at = [&](std::string_view key, std::string_view what) {
    return Error(filename, line_of(key), what);
  };

  if (c.local_socket.empty()) c.local_socket = node.run() + "/cluster.sock";
  if (!c.Enabled()) {
    // Not in a fleet: nothing else may be half-configured.
    for (const char* k : {"advertise", "seed", "seed-dns", "seed-srv"}) {
      if (line_of(k)) {
        return fail_at(k, StrCat(k, " needs gossip-listen"));
      }
    }
    return c;
  }
  if (c.node_id.empty()) {
    return fail_at("gossip-listen", "gossip-listen needs node-id");
  }
  if (!line_of("advertise")) {
    if (c.gossip_listen.IsWildcard()) {
      return fail_at("gossip-listen",
                     "gossip-listen is a wildcard address: set advertise to "
                     "the address peers dial");
    }
    c.advertise = c.gossip_listen;
  } else if (c.advertise.IsWildcard()) {
    return fail_at("advertise", "advertise must be an address peers can dial");
  }
  if (c.probe_timeout_ms >= c.probe_interval_ms) {
    return fail_at(line_of("probe-timeout") ? "probe-timeout"
                                            : "probe-interval",
                   StrCat("probe-timeout (", c.probe_timeout_ms,
                          "ms) must be shorter than probe-interval (",
                          c.probe_interval_ms, "ms)"));
  }
  if (c.suspicion_min_ms > c.suspicion_max_ms) {
    return fail_at(line_of("suspicion-min") ? "suspicion-min"
                                            : "suspicion-max",
                   StrCat("suspicion-min (", c.suspicion_min_ms,
                          "ms) is above suspicion-max (", c.suspicion_max_ms,
                          "ms)"));
  }
  // Peers only talk mutual TLS: the three files must be there.
  for (auto [key, path] : {std::pair{"tls-cert", &c.tls_cert},
                           std::pair{"tls-key", &c.tls_key},
                           std::pair{"tls-ca", &c.tls_ca}}) {
    if (path->empty()) {
      return fail_at("gossip-listen",
                     StrCat("gossip-listen needs ", key,
                            " (peers only talk mutual TLS)"));
    }
    if (::access(path->c_str(), R_OK) != 0) {
      return fail_at(key, StrCat(key, ": cannot read ", *path, ": ",
                                 std::strerror(errno)));
    }
  }
  return c;
}

absl::StatusOr<ClusterConf> LoadClusterConf(const NodeDir& node) {
  std::string path = node.etc_file("cluster.conf");
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(StrCat(path, ": ", std::strerror(errno)));
  }
  std::string text(kMaxFileBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxFileBytes) {
    return absl::InvalidArgumentError(
        StrCat(path, ": larger than ", kMaxFileBytes, " bytes"));
  }
  return ParseClusterConf(text, path, node);
}

}  // namespace zm::cluster
