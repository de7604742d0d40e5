#include "node/config/cluster_conf.h"

#include <unistd.h>

#include "node/common/strings.h"
#include "node/config/config_file.h"
#include "node/mail/queue_id.h"

namespace zm::config {

absl::StatusOr<int64_t> ParseDurationMs(std::string_view text) {
  static constexpr struct {
    std::string_view suffix;
    int64_t ms;
  } kUnits[] = {{"ms", 1},      {"s", 1000},     {"m", 60000},
                {"h", 3600000}, {"d", 86400000}, {"w", 7 * 86400000LL}};
  // Several parts may follow each other, as ZMailer writes "1d2h".
  int64_t total = 0;
  std::string_view rest = text;
  if (rest.empty()) return absl::InvalidArgumentError("empty duration");
  while (!rest.empty()) {
    size_t digits = 0;
    while (digits < rest.size() &&
           isdigit(static_cast<unsigned char>(rest[digits]))) {
      ++digits;
    }
    int64_t n = 0;
    if (digits == 0 || !ParseNumber(rest.substr(0, digits), &n)) {
      return absl::InvalidArgumentError(StrCat("bad duration '", text, "'"));
    }
    rest.remove_prefix(digits);
    int64_t unit = 1000;  // plain numbers are seconds
    bool matched = rest.empty();
    for (const auto& u : kUnits) {
      if (rest.substr(0, u.suffix.size()) == u.suffix &&
          (rest.size() == u.suffix.size() ||
           isdigit(static_cast<unsigned char>(rest[u.suffix.size()])))) {
        unit = u.ms;
        rest.remove_prefix(u.suffix.size());
        matched = true;
        break;
      }
    }
    if (!matched) {
      return absl::InvalidArgumentError(
          StrCat("bad duration unit in '", text, "'"));
    }
    total += n * unit;
  }
  return total;
}

absl::StatusOr<ClusterConf> ParseClusterConf(const std::string& path,
                                             const NodeDir& node) {
  auto lines = ReadLines(path);
  if (!lines.ok()) return lines.status();
  ClusterConf cc;
  for (const auto& l : *lines) {
    auto tok = SplitWhitespace(l.text);
    std::string key(tok[0]);
    if (tok.size() < 2) return Error(path, l.number, key + " needs a value");
    auto single = [&](std::string* out) -> absl::Status {
      if (tok.size() != 2)
        return Error(path, l.number, key + " takes one value");
      auto v = ExpandVariables(tok[1], node);
      if (!v.ok()) return Error(path, l.number, Message(v.status()));
      *out = *v;
      return absl::OkStatus();
    };
    absl::Status s;
    if (key == "node-id") {
      s = single(&cc.node_id);
    } else if (key == "listen") {
      s = single(&cc.listen);
      if (s.ok() && cc.listen.rfind(':') == std::string::npos) {
        s = Error(path, l.number, "listen needs host:port");
      }
    } else if (key == "peers") {
      for (size_t i = 1; i < tok.size(); ++i) cc.peers.emplace_back(tok[i]);
    } else if (key == "seed-dns") {
      s = single(&cc.seed_dns);
    } else if (key == "tls-cert") {
      s = single(&cc.tls_cert);
    } else if (key == "tls-key") {
      s = single(&cc.tls_key);
    } else if (key == "tls-ca") {
      s = single(&cc.tls_ca);
    } else if (key == "gossip-interval") {
      std::string v;
      s = single(&v);
      if (s.ok()) {
        auto ms = ParseDurationMs(v);
        if (!ms.ok() || *ms <= 0) {
          s = Error(path, l.number,
                    "gossip-interval needs a positive duration");
        } else {
          cc.gossip_interval_ms = static_cast<int>(*ms);
        }
      }
    } else {
      s = Error(path, l.number, StrCat("unknown key '", key, "'"));
    }
    if (!s.ok()) return s;
  }
  return cc;
}

absl::StatusOr<std::string> LoadNodeTag(const NodeDir& node) {
  auto cc = LoadClusterConf(node);
  if (!cc.ok()) return cc.status();
  std::string id = cc->node_id;
  if (id.empty()) {
    char host[256] = {0};
    if (::gethostname(host, sizeof host - 1) == 0) id = host;
  }
  return mail::NodeTag(id);
}

}  // namespace zm::config
