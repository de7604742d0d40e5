#include "node/router/router_conf.h"

#include <algorithm>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/config/config_file.h"

namespace zm::router {
namespace {

bool ParseBool(std::string_view v, bool* out) {
  if (v == "yes" || v == "on" || v == "true" || v == "1") {
    *out = true;
    return true;
  }
  if (v == "no" || v == "off" || v == "false" || v == "0") {
    *out = false;
    return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<RouterConf> LoadRouterConf(const NodeDir& node) {
  RouterConf conf;
  std::string dns = "auto";
  std::string path = node.etc_file("router.conf");
  conf.path = path;
  auto lines = config::ReadLines(path);
  if (!lines.ok() && !absl::IsNotFound(lines.status())) return lines.status();
  if (lines.ok()) {
    for (const config::Line& l : *lines) {
      std::string_view text = Trim(l.text);
      size_t sp = text.find_first_of(" \t");
      if (sp == std::string_view::npos) {
        return config::Error(path, l.number, "expected 'KEY VALUE'");
      }
      std::string_view key = text.substr(0, sp);
      auto value = config::ExpandVariables(Trim(text.substr(sp)), node);
      if (!value.ok()) {
        return config::Error(path, l.number, Message(value.status()));
      }
      std::string_view v = *value;
      bool ok = true;
      if (key == "dns-check") {
        ok = v == "yes" || v == "no" || v == "auto";
        dns = std::string(v);
      } else if (key == "forward") {
        ok = ParseBool(v, &conf.forward);
      } else if (key == "forward-file") {
        conf.forward_file = std::string(v);
      } else if (key == "allowsourceroute") {
        ok = ParseBool(v, &conf.allow_source_route);
      } else if (key == "relations") {
        std::vector<std::string_view> names = SplitWhitespace(v);
        if (names.empty()) {
          return config::Error(path, l.number,
                               "relations: expected STEP NAME...");
        }
        std::string step(names.front());
        if (std::find(std::begin(kRelationSteps), std::end(kRelationSteps),
                      step) == std::end(kRelationSteps)) {
          return config::Error(
              path, l.number,
              StrCat("unknown routing step '", step,
                     "' (fqdnaliases, thishost, aliases, userdb, routes)"));
        }
        if (names.size() < 2) {
          return config::Error(
              path, l.number,
              StrCat("relations ", step, ": name at least one relation"));
        }
        if (conf.relations.count(step)) {
          return config::Error(path, l.number,
                               StrCat("relations ", step, " given twice"));
        }
        auto& sr = conf.relations[step];
        sr.line = l.number;
        for (size_t i = 1; i < names.size(); ++i) {
          sr.names.emplace_back(names[i]);
        }
      } else if (key == "max-alias-depth") {
        ok = ParseNumber(v, &conf.max_alias_depth) &&
             conf.max_alias_depth >= 1 && conf.max_alias_depth <= 100;
      } else {
        return config::Error(path, l.number, StrCat("unknown key '", key, "'"));
      }
      if (!ok) {
        return config::Error(path, l.number,
                             StrCat("bad value '", v, "' for ", key));
      }
    }
  }
  conf.dns_check = dns == "yes" || (dns == "auto" &&
                                    fs::Exists(node.etc_file("resolver.conf")));
  return conf;
}

}  // namespace zm::router
