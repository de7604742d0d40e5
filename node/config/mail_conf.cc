#include "node/config/mail_conf.h"

#include <unistd.h>

#include "node/common/strings.h"
#include "node/config/config_file.h"

namespace zm::config {

static std::string Unquote(std::string_view v) {
  if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') &&
      v.back() == v.front()) {
    v = v.substr(1, v.size() - 2);
  }
  return std::string(v);
}

absl::StatusOr<MailConf> ParseMailConf(const std::string& path) {
  auto lines = ReadLines(path);
  if (!lines.ok()) return lines.status();
  MailConf mc;
  for (const auto& l : *lines) {
    std::string_view t = Trim(l.text);
    auto eq = t.find('=');
    if (eq == std::string_view::npos) {
      return Error(path, l.number, "expected name=value");
    }
    std::string name(Trim(t.substr(0, eq)));
    std::string value = Unquote(Trim(t.substr(eq + 1)));
    if (name == "hostname") {
      mc.hostname = value;
    } else if (name == "mydomain") {
      mc.mydomain = value;
    } else if (name == "orgdomain") {
      mc.orgdomain = value;
    } else {
      return Error(path, l.number, StrCat("unknown name '", name, "'"));
    }
    if (value.empty() || value.find_first_of(" \t") != std::string::npos) {
      return Error(path, l.number, StrCat(name, " needs one domain name"));
    }
  }
  if (mc.hostname.empty()) {
    char host[256] = {0};
    if (::gethostname(host, sizeof host - 1) == 0 && host[0])
      mc.hostname = host;
    else
      mc.hostname = "localhost";
  }
  if (mc.mydomain.empty()) {
    auto dot = mc.hostname.find('.');
    mc.mydomain =
        dot == std::string::npos ? mc.hostname : mc.hostname.substr(dot + 1);
  }
  if (mc.orgdomain.empty()) mc.orgdomain = mc.mydomain;
  return mc;
}

}  // namespace zm::config
