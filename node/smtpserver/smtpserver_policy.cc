#include "node/smtpserver/smtpserver_policy.h"

#include <arpa/inet.h>

#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <set>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/config/config_file.h"
#include "node/relations/relation_db.h"
#include "node/smtpserver/smtpserver_config.h"
#include "node/smtpserver/smtpserver_mailauth.h"

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

}  // namespace

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

bool IsPolicyAttribute(std::string_view name) {
  for (std::string_view a : kAttributes) {
    if (EqualsIgnoreCase(a, name)) return true;
  }
  // zmnode: what SPF/DKIM/DMARC results do (smtpserver_mailauth.h).
  return EqualsIgnoreCase(name, "mailauth") ||
         IsAuthActionAttribute(ToLower(name));
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


std::string NetworkKey(const Policy::Network& n) {
  std::array<unsigned char, 16> a = n.addr;
  int bits = n.len;
  for (size_t i = 0; i < a.size(); ++i, bits -= 8) {
    if (bits >= 8) continue;
    a[i] &= bits <= 0 ? 0 : static_cast<unsigned char>(0xff << (8 - bits));
  }
  char text[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(n.v6 ? AF_INET6 : AF_INET, a.data(), text, sizeof(text));
  return n.v6 ? StrCat("[ipv6:", text, "]/", n.len)
              : StrCat("[", text, "]/", n.len);
}

// ---- PolicyAttrs ----------------------------------------------------------

std::optional<std::string> PolicyAttrs::Get(std::string_view name) const {
  for (const auto& [n, v] : list_) {
    if (n == name) return v;
  }
  return std::nullopt;
}

std::optional<bool> PolicyAttrs::Flag(std::string_view name) const {
  auto v = Get(name);
  if (!v) return std::nullopt;
  if (*v == "+") return true;
  if (*v == "-") return false;
  return std::nullopt;
}

// name \x1f value, pairs joined by \x1e.
std::string PolicyAttrs::Serialize() const {
  std::string out;
  for (const auto& [n, v] : list_) {
    if (!out.empty()) out += '\x1e';
    StrAppend(&out, n, "\x1f", v);
  }
  return out;
}

PolicyAttrs PolicyAttrs::Deserialize(std::string_view stored) {
  std::vector<std::pair<std::string, std::string>> list;
  if (!stored.empty()) {
    for (std::string_view pair : Split(stored, '\x1e')) {
      auto sep = pair.find('\x1f');
      if (sep == std::string_view::npos) continue;
      list.emplace_back(std::string(pair.substr(0, sep)),
                        std::string(pair.substr(sep + 1)));
    }
  }
  return PolicyAttrs(std::move(list));
}

std::optional<RateLimit> ParseRateLimit(std::string_view value) {
  RateLimit r;
  auto comma = value.find(',');
  if (!ParseNumber(Trim(value.substr(0, comma)), &r.messages)) {
    return std::nullopt;
  }
  if (comma != std::string_view::npos &&
      !ParseNumber(Trim(value.substr(comma + 1)), &r.recipients)) {
    return std::nullopt;
  }
  return r;
}

// ---- the store ------------------------------------------------------------

// The prefix lengths that network keys use, longest first: ForIp probes
// only these (one lookup per length present, not 33 or 129).
struct PrefixLengths {
  std::vector<int> v4, v6;
};

namespace {

// Stored under " prefixes" as "32,24,8;128,64". Absent (a database
// compiled before zmnode kept it) or malformed: every length.
std::shared_ptr<const PrefixLengths> ParsePrefixLengths(
    const std::optional<std::string>& stored) {
  auto p = std::make_shared<PrefixLengths>();
  bool ok = stored.has_value();
  if (ok) {
    auto halves = Split(*stored, ';');
    ok = halves.size() == 2;
    for (size_t h = 0; ok && h < 2; ++h) {
      std::vector<int>& out = h == 0 ? p->v4 : p->v6;
      int max = h == 0 ? 32 : 128;
      for (std::string_view w : Split(halves[h], ',', true)) {
        int len = -1;
        if (!ParseNumber(w, &len) || len < 0 || len > max) ok = false;
        out.push_back(len);
      }
    }
  }
  if (!ok) {
    p->v4.clear();
    p->v6.clear();
    for (int i = 32; i >= 0; --i) p->v4.push_back(i);
    for (int i = 128; i >= 0; --i) p->v6.push_back(i);
  }
  return p;
}

}  // namespace

class Policy::Store {
 public:
  virtual ~Store() = default;
  virtual std::optional<std::string> Get(const std::string& key) = 0;
  // Before a lookup: pick up a new compiled generation.
  virtual void Refresh() {}
  // The prefix lengths of this generation's network keys.
  virtual std::shared_ptr<const PrefixLengths> Lengths() = 0;
  // Lookups never leave memory (no database).
  virtual bool InMemory() const { return false; }
};

namespace {

class MemoryStore : public Policy::Store {
 public:
  explicit MemoryStore(std::map<std::string, std::string> m)
      : map_(std::move(m)), lengths_(ParsePrefixLengths(Get(" prefixes"))) {}
  bool InMemory() const override { return true; }
  std::optional<std::string> Get(const std::string& key) override {
    auto it = map_.find(key);
    if (it == map_.end()) return std::nullopt;
    return it->second;
  }
  std::shared_ptr<const PrefixLengths> Lengths() override { return lengths_; }
  const std::map<std::string, std::string>& map() const { return map_; }

 private:
  const std::map<std::string, std::string> map_;
  const std::shared_ptr<const PrefixLengths> lengths_;
};

// db/smtp-policy, reopened when newdb swapped in a new generation
// (checked once per lookup: one readlink).
class DbStore : public Policy::Store {
 public:
  DbStore(std::string db_dir, std::unique_ptr<relations::RelationDb> db)
      : db_dir_(std::move(db_dir)),
        db_(std::move(db)),
        lengths_(ParsePrefixLengths(db_->Lookup(" prefixes"))) {}
  std::shared_ptr<const PrefixLengths> Lengths() override {
    std::lock_guard<std::mutex> lock(mu_);
    return lengths_;
  }
  std::optional<std::string> Get(const std::string& key) override {
    std::shared_ptr<relations::RelationDb> db;
    {
      std::lock_guard<std::mutex> lock(mu_);
      db = db_;
    }
    return db->Lookup(key);
  }
  void Refresh() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!db_->Changed()) return;
    auto fresh = relations::RelationDb::Open(db_dir_, "smtp-policy");
    if (fresh.ok()) {
      db_ = std::move(*fresh);
      lengths_ = ParsePrefixLengths(db_->Lookup(" prefixes"));
    }
  }

 private:
  const std::string db_dir_;
  std::mutex mu_;
  std::shared_ptr<relations::RelationDb> db_;
  std::shared_ptr<const PrefixLengths> lengths_;
};

constexpr std::pair<std::string_view, std::string_view> kBuiltinNets[] = {
    {"[127.0.0.0]/8", "_full_rights"}, {"[ipv6:::1]/128", "_full_rights"}};

std::optional<bool> RelayOpinion(const PolicyAttrs& attrs) {
  auto a = attrs.Flag("relaycustnet");
  auto b = attrs.Flag("fulltrustnet");
  if (a.value_or(false) || b.value_or(false)) return true;
  if (a || b) return false;
  return std::nullopt;
}

// "[192.0.2.0]/24" style keys keep their case-insensitive "ipv6:" prefix
// canonical; everything else is case-insensitive.
std::string CanonicalKey(std::string_view key) {
  if (!key.empty() && key.front() == '[') {
    Policy::Network n;
    if (ParseNetworkKey(key, &n)) return NetworkKey(n);
  }
  return ToLower(key);
}

}  // namespace

// ---- Policy ---------------------------------------------------------------

bool Policy::in_memory() const { return !store_ || store_->InMemory(); }

Policy::Policy() {
  auto p = Parse("built-in", "", {});
  if (p.ok()) *this = std::move(*p);
}

absl::StatusOr<Policy> Policy::Parse(
    std::string_view src_name, std::string_view src_text,
    const std::vector<std::pair<std::string, std::string>>& companions) {
  std::vector<Entry> entries;
  std::map<std::string, size_t> tags;  // tag -> index in entries
  // The built-in networks come first: a source entry for the same prefix
  // replaces them.
  for (const auto& [key, tag] : kBuiltinNets) {
    Entry e;
    e.where = "built-in";
    e.key = std::string(key);
    e.includes.emplace_back(tag);
    entries.push_back(std::move(e));
  }
  const size_t builtin_count = entries.size();
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
        if (i + 1 >= tok.size() || tok[i + 1].empty() ||
            tok[i + 1][0] != '_') {
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
      const std::string& value = e.attrs.back().second;
      if ((name == "test-dns-rbl" || name == "rcpt-dns-rbl") && value != "+" &&
          value != "-" && !ParseDnsblZones(value)) {
        return err(StrCat(name, " wants +, - or zone[:zone...], not '", value,
                          "'"));
      }
      if (name == "ratelimitmsgs" && !ParseRateLimit(e.attrs.back().second)) {
        return err(StrCat("ratelimitmsgs wants N or N,M, not '",
                          e.attrs.back().second, "'"));
      }
      if (IsAuthActionAttribute(name) &&
          !ParseAuthAction(ToLower(e.attrs.back().second))) {
        return err(StrCat(name, " wants reject, freeze, tag or accept, not '",
                          e.attrs.back().second, "'"));
      }
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
  size_t builtin_tags_added = 0;
  for (const auto& [tag, attr] : kBuiltinTags) {
    if (tags.count(std::string(tag))) continue;
    Entry e;
    e.where = "built-in";
    e.key = std::string(tag);
    e.attrs.emplace_back(std::string(attr), "+");
    if (tag == "_full_rights") e.attrs.emplace_back("fulltrustnet", "+");
    tags[e.key] = entries.size();
    entries.push_back(std::move(e));
    ++builtin_tags_added;
  }
  // Resolve includes (at most three levels, as ZMailer); merge entries of
  // one key (a later one's values win; a source entry replaces a built-in).
  Policy p{Blank{}};
  p.origin_ = std::string(src_name);
  std::map<std::string, std::string> compiled;
  std::map<std::string, std::string> where;  // key -> first source
  for (const Entry& e : entries) {
    std::vector<std::pair<std::string, std::string>> attrs = e.attrs;
    std::vector<std::pair<std::string, int>> todo;
    for (const auto& t : e.includes) todo.emplace_back(t, 1);
    for (size_t i = 0; i < todo.size(); ++i) {
      auto [tag, depth] = todo[i];
      auto it = tags.find(tag);
      if (it == tags.end()) {
        return config::Error(
            e.file.empty() ? src_name : e.file, e.line,
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
    std::string key = CanonicalKey(e.key);
    auto old = compiled.find(key);
    if (old != compiled.end() && where[key] != "built-in") {
      PolicyAttrs before = PolicyAttrs::Deserialize(old->second);
      attrs.insert(attrs.end(), before.list().begin(), before.list().end());
    }
    compiled[key] = PolicyAttrs(attrs).Serialize();
    where[key] = e.where;
  }
  for (const auto& [key, value] : compiled) {
    if (key.front() != '[') continue;
    Network n;
    ParseNetworkKey(key, &n);
    n.trusted = RelayOpinion(PolicyAttrs::Deserialize(value)).value_or(false);
    n.source = where[key];
    p.networks_.push_back(n);
  }
  p.entry_count_ = entries.size() - builtin_count - builtin_tags_added;
  // The prefix lengths in use, longest first, for ForIp.
  std::set<int, std::greater<int>> v4, v6;
  for (const Network& n : p.networks_) (n.v6 ? v6 : v4).insert(n.len);
  std::string lengths;
  for (int len : v4) StrAppend(&lengths, lengths.empty() ? "" : ",", len);
  lengths += ';';
  bool first = true;
  for (int len : v6) {
    StrAppend(&lengths, first ? "" : ",", len);
    first = false;
  }
  compiled[" prefixes"] = lengths;
  p.store_ = std::make_shared<MemoryStore>(std::move(compiled));
  return p;
}

namespace {

absl::StatusOr<Policy> ParseSourceFiles(const NodeDir& node) {
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
  return Policy::Parse(src, text, companions);
}

// Whether a source file was edited after the compiled database was built
// (the operator has not run newdb yet): the source is the truth then.
bool SourceNewerThan(const NodeDir& node, const std::string& generation) {
  std::error_code ec;
  auto built = std::filesystem::last_write_time(
      StrCat(node.db(), "/", generation), ec);
  if (ec) return true;
  std::vector<std::string> files = {"smtp-policy.src"};
  for (const Companion& c : kCompanions) files.emplace_back(c.file);
  for (const std::string& f : files) {
    auto t = std::filesystem::last_write_time(node.etc_file(f), ec);
    if (!ec && t > built) return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<Policy> Policy::Load(const NodeDir& node) {
  auto db = relations::RelationDb::Open(node.db(), "smtp-policy");
  if (!db.ok()) {
    if (!absl::IsNotFound(db.status())) return db.status();
    return ParseSourceFiles(node);
  }
  if (SourceNewerThan(node, (*db)->generation())) return ParseSourceFiles(node);
  Policy p{Blank{}};
  p.origin_ = StrCat(node.db(), "/", (*db)->generation());
  auto count = (*db)->Lookup(" count");
  if (count) ParseNumber(*count, &p.entry_count_);
  p.store_ = std::make_shared<DbStore>(node.db(), std::move(*db));
  return p;
}

std::vector<std::pair<std::string, std::string>> Policy::CompiledEntries()
    const {
  std::vector<std::pair<std::string, std::string>> out;
  auto* mem = dynamic_cast<const MemoryStore*>(store_.get());
  if (mem) out.assign(mem->map().begin(), mem->map().end());
  out.emplace_back(" count", std::to_string(entry_count_));
  return out;
}

std::optional<std::string> Policy::Find(const std::string& key) const {
  return store_ ? store_->Get(key) : std::nullopt;
}

PolicyAttrs Policy::ForIp(std::string_view ip) const {
  if (store_) store_->Refresh();
  Network n;
  if (!AddressBytes(ip, &n.v6, &n.addr) || !store_) return {};
  std::shared_ptr<const PrefixLengths> lengths = store_->Lengths();
  for (int len : n.v6 ? lengths->v6 : lengths->v4) {
    n.len = len;
    std::string key = NetworkKey(n);
    if (auto v = Find(key)) {
      PolicyAttrs a = PolicyAttrs::Deserialize(*v);
      a.key = key;
      return a;
    }
  }
  return {};
}

PolicyAttrs Policy::ForDomain(std::string_view domain) const {
  if (store_) store_->Refresh();
  std::string d = ToLower(StripTrailingDots(domain));
  if (d.empty()) return {};
  std::vector<std::string> keys = {d};
  for (size_t pos = 0; pos != std::string::npos;) {
    keys.push_back(StrCat(".", d.substr(pos)));
    pos = d.find('.', pos);
    if (pos != std::string::npos) ++pos;
  }
  keys.push_back(".");
  for (const std::string& key : keys) {
    if (auto v = Find(key)) {
      PolicyAttrs a = PolicyAttrs::Deserialize(*v);
      a.key = key;
      return a;
    }
  }
  return {};
}

PolicyAttrs Policy::ForAddress(std::string_view address) const {
  if (store_) store_->Refresh();
  std::string a = ToLower(address);
  auto at = a.rfind('@');
  if (at == std::string::npos) {
    if (auto v = Find(a)) {
      PolicyAttrs r = PolicyAttrs::Deserialize(*v);
      r.key = a;
      return r;
    }
    return {};
  }
  for (const std::string& key : {a, a.substr(0, at + 1)}) {
    if (auto v = Find(key)) {
      PolicyAttrs r = PolicyAttrs::Deserialize(*v);
      r.key = key;
      return r;
    }
  }
  return ForDomain(std::string_view(a).substr(at + 1));
}

bool Policy::IsTrusted(std::string_view ip) const {
  return IsTrustedNetwork(ForIp(ip));
}

bool IsTrustedNetwork(const PolicyAttrs& attrs) {
  return RelayOpinion(attrs).value_or(false);
}

absl::Status CompilePolicy(const NodeDir& node, std::string* report) {
  auto p = ParseSourceFiles(node);
  if (!p.ok()) return p.status();
  auto entries = p->CompiledEntries();
  absl::Status s = relations::BuildAndSwap(node.db(), "smtp-policy", entries);
  if (!s.ok()) return s;
  if (report) {
    // Less the two bookkeeping entries (" count", " prefixes").
    StrAppend(report, "smtp-policy: ", entries.size() - 2, " keys from ",
              p->entry_count(), " entries of ", node.etc_file("smtp-policy.src"),
              " and companions\n");
  }
  return absl::OkStatus();
}

}  // namespace zm::smtpserver
