#include "node/smtpserver/smtpserver_policy.h"

#include <arpa/inet.h>

#include <map>
#include <optional>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/config/config_file.h"

namespace zm::smtpserver {
namespace {

constexpr std::string_view kAttributes[] = {
    "rejectnet",       "freezenet",       "rejectsource", "freezesource",
    "relaycustomer",   "relaycustnet",    "relaytarget",  "acceptifmx",
    "acceptifdns",     "senderokwithdns", "freeze",       "sendernorelay",
    "message",         "test-dns-rbl",    "rcpt-dns-rbl", "test-rcpt-dns-rbl",
    "localdomain",     "maxinsize",       "maxoutsize",   "fulltrustnet",
    "trustrecipients", "trust-whoson",    "spf",          "filtering",
    "maxsameipsource", "ratelimitmsgs",
};

struct Companion {
  std::string_view file;
  std::string_view tag;
};
constexpr Companion kCompanions[] = {
    {"localnames", "_localnames"},
    {"smtp-policy.relay", "_full_rights"},
    {"smtp-policy.relay.manual", "_full_rights"},
    {"smtp-policy.mx", "_relaytarget"},
    {"smtp-policy.mx.manual", "_relaytarget"},
    {"smtp-policy.spam", "_bulk_mail"},
    {"smtp-policy.spam.manual", "_bulk_mail"},
};

struct Entry {
  std::string where;  // "file:line"
  std::string file;
  int line = 0;
  std::string key;
  std::vector<std::pair<std::string, std::string>> attrs;
  std::vector<std::string> includes;  // tags
};

// Words separated by white space; a word starting with '"' runs to the
// closing quote (quotes removed). Returns false on an unterminated quote.
bool Tokenize(std::string_view s, std::vector<std::string>* out) {
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] == ' ' || s[i] == '\t') {
      ++i;
      continue;
    }
    if (s[i] == '"') {
      size_t close = s.find('"', i + 1);
      if (close == std::string_view::npos) return false;
      out->emplace_back(s.substr(i + 1, close - i - 1));
      i = close + 1;
      continue;
    }
    size_t end = s.find_first_of(" \t", i);
    if (end == std::string_view::npos) end = s.size();
    out->emplace_back(s.substr(i, end - i));
    i = end;
  }
  return true;
}

std::optional<bool> RelayOpinion(
    const std::vector<std::pair<std::string, std::string>>& attrs) {
  std::optional<bool> v;
  for (const auto& [name, value] : attrs) {
    if (name == "relaycustnet" || name == "fulltrustnet") {
      if (value == "+") return true;
      if (value == "-") v = false;
    }
  }
  return v;
}

bool AddressBytes(std::string_view ip, bool* v6,
                  std::array<unsigned char, 16>* out) {
  std::string s(ip);
  out->fill(0);
  if (::inet_pton(AF_INET, s.c_str(), out->data()) == 1) {
    *v6 = false;
    return true;
  }
  if (::inet_pton(AF_INET6, s.c_str(), out->data()) == 1) {
    // An IPv4-mapped address (::ffff:a.b.c.d) is the IPv4 client it is.
    static constexpr unsigned char kMapped[12] = {0, 0, 0, 0, 0,    0,
                                                  0, 0, 0, 0, 0xff, 0xff};
    if (std::equal(kMapped, kMapped + 12, out->begin())) {
      std::array<unsigned char, 16> v4{};
      std::copy(out->begin() + 12, out->end(), v4.begin());
      *out = v4;
      *v6 = false;
      return true;
    }
    *v6 = true;
    return true;
  }
  return false;
}

bool PrefixMatch(const Policy::Network& n, bool v6,
                 const std::array<unsigned char, 16>& a) {
  if (n.v6 != v6) return false;
  int bits = n.len;
  for (int i = 0; bits > 0; ++i, bits -= 8) {
    unsigned char mask =
        bits >= 8 ? 0xff : static_cast<unsigned char>(0xff << (8 - bits));
    if ((n.addr[i] & mask) != (a[i] & mask)) return false;
  }
  return true;
}

}  // namespace

bool IsPolicyAttribute(std::string_view name) {
  for (std::string_view a : kAttributes) {
    if (EqualsIgnoreCase(a, name)) return true;
  }
  return false;
}

bool ParseNetworkKey(std::string_view key, Policy::Network* out) {
  if (key.size() < 3 || key.front() != '[') return false;
  auto close = key.find(']');
  if (close == std::string_view::npos) return false;
  std::string_view addr = key.substr(1, close - 1);
  std::string_view rest = key.substr(close + 1);
  bool want_v6 = false;
  if (StartsWithIgnoreCase(addr, "ipv6:") ||
      StartsWithIgnoreCase(addr, "ipv6.")) {
    addr.remove_prefix(5);
    want_v6 = true;
  }
  bool v6 = false;
  std::array<unsigned char, 16> bytes{};
  std::string s(addr);
  if (::inet_pton(AF_INET6, s.c_str(), bytes.data()) == 1) {
    v6 = true;
  } else if (!want_v6 && ::inet_pton(AF_INET, s.c_str(), bytes.data()) == 1) {
    v6 = false;
  } else {
    return false;
  }
  int max = v6 ? 128 : 32;
  int len = max;
  if (!rest.empty()) {
    if (rest.front() != '/' || !ParseNumber(rest.substr(1), &len) || len < 0 ||
        len > max) {
      return false;
    }
  }
  out->v6 = v6;
  out->addr = bytes;
  out->len = len;
  return true;
}

Policy::Policy() {
  Network lo4;
  ParseNetworkKey("[127.0.0.0]/8", &lo4);
  lo4.trusted = true;
  lo4.source = "built-in";
  Network lo6;
  ParseNetworkKey("[ipv6:::1]/128", &lo6);
  lo6.trusted = true;
  lo6.source = "built-in";
  networks_ = {lo4, lo6};
}

absl::StatusOr<Policy> Policy::Parse(
    std::string_view src_name, std::string_view src_text,
    const std::vector<std::pair<std::string, std::string>>& companions) {
  std::vector<Entry> entries;
  std::map<std::string, size_t> tags;  // tag -> index in entries
  // The main file.
  int number = 0;
  for (std::string_view raw : Split(src_text, '\n')) {
    ++number;
    std::string line = config::StripComment(raw);
    std::vector<std::string> tok;
    auto err = [&](std::string_view what) {
      return config::Error(src_name, number, what);
    };
    if (!Tokenize(line, &tok)) return err("unterminated quoted value");
    if (tok.empty()) continue;
    Entry e;
    e.file = std::string(src_name);
    e.line = number;
    e.where = StrCat(src_name, ":", number);
    e.key = tok[0];
    if (e.key == "=") return err("a line starts with its key, not '='");
    for (size_t i = 1; i < tok.size(); ++i) {
      if (tok[i] == "=") {
        if (i + 1 >= tok.size() || tok[i + 1].empty() || tok[i + 1][0] != '_') {
          return err("'=' needs a _tag to include");
        }
        e.includes.push_back(tok[++i]);
        continue;
      }
      std::string name = ToLower(tok[i]);
      if (!IsPolicyAttribute(name)) {
        return err(StrCat("unknown policy attribute '", tok[i], "'"));
      }
      if (i + 1 >= tok.size())
        return err(StrCat("attribute '", tok[i], "' needs a value"));
      e.attrs.emplace_back(name, tok[++i]);
    }
    if (e.key.front() == '[') {
      Network n;
      if (!ParseNetworkKey(e.key, &n)) {
        return err(StrCat("bad network key '", e.key,
                          "' (want [a.b.c.d]/len or [ipv6:addr]/len)"));
      }
    } else if (e.key.front() == '_') {
      if (tags.count(e.key))
        return err(StrCat("tag ", e.key, " defined twice"));
      tags[e.key] = entries.size();
    }
    entries.push_back(std::move(e));
  }
  // Companion lists: each key includes the file's tag.
  for (const auto& [file, text] : companions) {
    std::string_view tag;
    for (const Companion& c : kCompanions) {
      std::string_view base = file;
      auto slash = base.rfind('/');
      if (slash != std::string_view::npos) base.remove_prefix(slash + 1);
      if (base == c.file) tag = c.tag;
    }
    if (tag.empty())
      return absl::InvalidArgumentError(StrCat("no tag for ", file));
    int n = 0;
    for (std::string_view raw : Split(text, '\n')) {
      ++n;
      std::string line = config::StripComment(raw);
      auto words = SplitWhitespace(line);
      if (words.empty()) continue;
      Entry e;
      e.file = file;
      e.line = n;
      e.where = StrCat(file, ":", n);
      e.key = std::string(words[0]);
      if (e.key.front() == '[') {
        Network net;
        if (!ParseNetworkKey(e.key, &net)) {
          return config::Error(file, n,
                               StrCat("bad network key '", e.key, "'"));
        }
      }
      e.includes.emplace_back(tag);
      entries.push_back(std::move(e));
    }
  }
  // The companion files' tags, when smtp-policy.src does not define them
  // itself, mean what ZMailer's boilerplate makes them mean.
  static constexpr std::pair<std::string_view, std::string_view>
      kBuiltinTags[] = {{"_localnames", "localdomain"},
                        {"_full_rights", "relaycustnet"},
                        {"_relaytarget", "relaytarget"},
                        {"_bulk_mail", "rejectsource"}};
  for (const auto& [tag, attr] : kBuiltinTags) {
    if (tags.count(std::string(tag))) continue;
    Entry e;
    e.where = "built-in";
    e.key = std::string(tag);
    e.attrs.emplace_back(std::string(attr), "+");
    if (tag == "_full_rights") e.attrs.emplace_back("fulltrustnet", "+");
    tags[e.key] = entries.size();
    entries.push_back(std::move(e));
  }
  // Resolve includes (at most three levels, as ZMailer) and collect networks.
  Policy p;
  p.entry_count_ = entries.size() - std::size(kBuiltinTags);
  for (const Entry& e : entries) {
    std::vector<std::pair<std::string, std::string>> attrs = e.attrs;
    std::vector<std::pair<std::string, int>> todo;
    for (const auto& t : e.includes) todo.emplace_back(t, 1);
    while (!todo.empty()) {
      auto [tag, depth] = todo.front();
      todo.erase(todo.begin());
      auto it = tags.find(tag);
      if (it == tags.end()) {
        return config::Error(
            e.file, e.line,
            StrCat("tag ", tag, " is not defined in ", src_name));
      }
      if (depth > 3) {
        return config::Error(
            e.file, e.line,
            StrCat("tag ", tag, " nested more than three levels (a loop?)"));
      }
      const Entry& def = entries[it->second];
      attrs.insert(attrs.end(), def.attrs.begin(), def.attrs.end());
      for (const auto& t : def.includes) todo.emplace_back(t, depth + 1);
    }
    if (e.key.front() != '[') continue;
    Network n;
    ParseNetworkKey(e.key, &n);
    n.trusted = RelayOpinion(attrs).value_or(false);
    n.source = e.where;
    bool replaced = false;
    for (Network& old : p.networks_) {
      if (old.v6 == n.v6 && old.len == n.len && old.addr == n.addr) {
        old = n;  // a later entry for the same prefix wins
        replaced = true;
      }
    }
    if (!replaced) p.networks_.push_back(n);
  }
  return p;
}

absl::StatusOr<Policy> Policy::Load(const NodeDir& node) {
  std::string src = node.etc_file("smtp-policy.src");
  std::string text;
  if (fs::Exists(src)) {
    auto t = fs::ReadFile(src, 16u << 20);
    if (!t.ok()) return t.status();
    text = std::move(*t);
  }
  std::vector<std::pair<std::string, std::string>> companions;
  for (const Companion& c : kCompanions) {
    std::string path = node.etc_file(c.file);
    if (!fs::Exists(path)) continue;
    auto t = fs::ReadFile(path, 64u << 20);
    if (!t.ok()) return t.status();
    companions.emplace_back(path, std::move(*t));
  }
  return Parse(src, text, companions);
}

bool Policy::IsTrusted(std::string_view ip) const {
  bool v6 = false;
  std::array<unsigned char, 16> a{};
  if (!AddressBytes(ip, &v6, &a)) return false;
  const Network* best = nullptr;
  for (const Network& n : networks_) {
    if (PrefixMatch(n, v6, a) && (!best || n.len > best->len)) best = &n;
  }
  return best && best->trusted;
}

}  // namespace zm::smtpserver
