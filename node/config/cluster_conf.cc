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
    // A year is plenty for any timer; past it (and well before int64
    // overflow) the value is refused, not wrapped.
    constexpr int64_t kMaxMs = 366 * 86400000LL;
    if (n > kMaxMs / unit || total > kMaxMs - n * unit) {
      return absl::InvalidArgumentError(
          StrCat("duration '", text, "' is longer than a year"));
    }
    total += n * unit;
  }
  return total;
}

absl::StatusOr<std::string> LoadNodeId(const NodeDir& node) {
  std::string path = node.etc_file("cluster.conf");
  auto lines = ReadLines(path);
  if (!lines.ok()) return lines.status();
  std::string id;
  for (const auto& l : *lines) {
    auto tok = SplitWhitespace(l.text);
    if (tok.empty() || tok[0] != "node-id") continue;
    if (tok.size() != 2) return Error(path, l.number, "node-id takes one value");
    id = std::string(tok[1]);
  }
  return id;
}

absl::StatusOr<std::string> LoadNodeTag(const NodeDir& node) {
  auto node_id = LoadNodeId(node);
  if (!node_id.ok()) return node_id.status();
  std::string id = *node_id;
  if (id.empty()) {
    char host[256] = {0};
    if (::gethostname(host, sizeof host - 1) == 0) id = host;
  }
  return mail::NodeTag(id);
}

}  // namespace zm::config
