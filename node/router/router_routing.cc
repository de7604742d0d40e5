// Routing: own names, aliases (recursive), userdb, local users and their
// .forward, routes, DNS check for remote domains.
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "absl/synchronization/mutex.h"
#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/config/config_file.h"
#include "node/config/mail_conf.h"
#include "node/mail/address.h"
#include "node/metrics/metrics_catalog.h"
#include "node/relations/dbases_conf.h"
#include "node/relations/relation_db.h"
#include "node/relations/relation_source.h"
#include "node/router/router_conf.h"
#include "node/router/routing.h"

namespace zm::router {
namespace {

using relations::RelationDb;

// Bounds of one recipient's expansion.
constexpr size_t kMaxIncludeBytes = 1u << 20;
constexpr size_t kMaxRoutesPerRecipient = 10000;

// The relations the router reads, by their dbases.conf names (ZMailer's,
// with our file names as synonyms).
struct UsedRelation {
  std::string_view name;
  std::string_view role;
};
constexpr UsedRelation kUsed[] = {
    {"aliases", "aliases"},   {"fqdnaliases", "fqdnaliases"},
    {"routesdb", "routes"},   {"routes", "routes"},
    {"thishost", "thishost"}, {"localnames", "thishost"},
    {"userdb", "userdb"},
};

struct Db {
  relations::RelationSpec spec;
  std::shared_ptr<const RelationDb> db;
};

// An immutable view of the configuration; swapped whole on reload.
struct State {
  NodeDir node;
  config::MailConf mail;
  RouterConf conf;
  std::set<std::string> own;  // lower-case own domain names
  // Per routing step, the relations it consults in order (router.conf
  // `relations`, else the built-in ones).
  std::map<std::string, std::vector<Db>, std::less<>> by_role;

  bool HasRole(std::string_view role) const {
    auto it = by_role.find(role);
    return it != by_role.end() && !it->second.empty();
  }
  // The first of the step's relations that has `key` answers; *from (if
  // given) names it.
  std::optional<std::string> Lookup(std::string_view role, std::string_view key,
                                    const std::string** from = nullptr) const {
    auto it = by_role.find(role);
    if (it == by_role.end()) return std::nullopt;
    std::string folded;
    for (const Db& d : it->second) {
      std::string_view k = key;
      if (d.spec.lowercase_lookups &&
          std::any_of(key.begin(), key.end(),
                      [](char c) { return c >= 'A' && c <= 'Z'; })) {
        if (folded.empty()) folded = ToLower(key);
        k = folded;
      }
      if (auto v = d.db->Lookup(k)) {
        if (from != nullptr) *from = &d.spec.name;
        return v;
      }
    }
    return std::nullopt;
  }
  std::string OwnDomain() const {
    return !mail.mydomain.empty() ? ToLower(mail.mydomain)
                                  : ToLower(mail.hostname);
  }
};

struct UserInfo {
  bool known = false;
  std::string home;  // "" without a passwd entry
  uid_t uid = 0;
};

UserInfo FindUser(const NodeDir& node, const std::string& name) {
  UserInfo u;
  if (name.empty() || name.size() > 256 || name.front() == '.' ||
      name.find('/') != std::string::npos) {
    return u;
  }
  struct passwd pw;
  struct passwd* found = nullptr;
  char buf[4096];
  if (::getpwnam_r(name.c_str(), &pw, buf, sizeof buf, &found) == 0 &&
      found != nullptr) {
    u.known = true;
    u.home = found->pw_dir;
    u.uid = found->pw_uid;
    return u;
  }
  u.known = fs::Exists(node.mail() + "/" + name);
  return u;
}

std::string Join(const std::vector<std::string>& v, std::string_view sep) {
  std::string out;
  for (const std::string& s : v) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

// One recipient's walk through aliases and routes.
class Walk {
 public:
  Walk(const State& st, dns::Resolver* resolver, std::vector<Route>* out,
       std::vector<std::string>* trace, metrics::Registry* metrics = nullptr)
      : st_(st),
        resolver_(resolver),
        out_(out),
        trace_(trace),
        metrics_(metrics) {}

  void Recipient(std::string_view address) {
    std::string_view s = Trim(address);
    if (s.size() >= 2 && s.front() == '<' && s.back() == '>') {
      s = Trim(s.substr(1, s.size() - 2));
    }
    if (!s.empty() && (s.front() == '|' || s.front() == '/')) {
      Error("refused", address,
            "pipes and files are only allowed as alias targets");
      return;
    }
    auto a = mail::ParseAddress(s);
    if (!a.ok()) {
      Error("syntax", address,
            StrCat("bad address syntax: ", Message(a.status())));
      return;
    }
    if (a->null) {
      Error("syntax", address, "null recipient address");
      return;
    }
    Trace("address", StrCat("<", address, "> parsed as ", a->ToString()));
    if (!a->source_route.empty()) {
      if (st_.conf.allow_source_route && !IsOwn(a->source_route.front())) {
        std::string hop = a->source_route.front();
        Trace("source route", StrCat("allowsourceroute: via ", hop));
        Add({"smtp", hop,
             StrCat("@", Join(a->source_route, ",@"), ":", a->ToString()),
             "", ""});
        return;
      }
      Trace("source route",
            StrCat("@", Join(a->source_route, ",@"), ": ignored"));
    }
    Parsed(*a, 0, /*no_alias=*/false);
  }

 private:
  void Trace(std::string_view step, std::string_view what) {
    if (trace_ == nullptr) return;
    trace_->push_back(StrCat(std::string(chain_.size() * 2, ' '), step,
                             step == "=>" ? " " : ": ", what));
  }

  void Add(Route r) {
    if (out_->size() >= kMaxRoutesPerRecipient) {
      if (!overflowed_) {
        overflowed_ = true;
        out_->push_back({"error", "toomany", r.user,
                         "alias expansion gives too many recipients", ""});
      }
      return;
    }
    if (r.sender.empty() && !owners_.empty()) r.sender = owners_.back();
    Trace("=>", StrCat(r.channel, " ", r.host, " ", r.user,
                       r.diag.empty() ? "" : StrCat(" (", r.diag, ")"),
                       r.sender.empty() ? "" : StrCat(" sender=<", r.sender,
                                                      ">")));
    out_->push_back(std::move(r));
  }
  void Error(std::string_view host, std::string_view user,
             std::string_view diag) {
    Add({"error", std::string(host), std::string(user), std::string(diag),
         ""});
  }
  // An error that names the chain of aliases that led to it.
  void ChainError(std::string_view host, std::string_view user,
                  std::string_view what) {
    Error(host, user, StrCat(what, " (", Join(chain_, " -> "), ")"));
  }

  std::string DepthText() const {
    return StrCat("alias nesting deeper than ", st_.conf.max_alias_depth);
  }

  bool IsOwn(const std::string& domain) const {
    if (st_.own.count(domain)) return true;
    return st_.Lookup("thishost", domain).has_value();
  }

  // A lookup in a routing step's relations; answered_ names the relation
  // that had the key (for the trace).
  std::optional<std::string> Find(std::string_view role, std::string_view key) {
    const std::string* from = nullptr;
    auto v = st_.Lookup(role, key, &from);
    answered_ = from != nullptr ? std::string_view(*from) : role;
    return v;
  }

  // A target from an alias, an :include: file or a .forward; pipes and
  // files only when `trusted`.
  void Target(const std::string& t, int depth, bool trusted) {
    if (t.front() == '|' || t.front() == '/') {
      if (!trusted) {
        Error("refused", t, "pipe or file target from an untrusted source");
        return;
      }
      Add({"local", t.front() == '|' ? "pipe" : "file", t, "", ""});
      return;
    }
    std::string_view rest = t;
    if (ConsumePrefix(&rest, ":include:")) {
      Include(std::string(rest), depth);
      return;
    }
    bool no_alias = ConsumePrefix(&rest, "\\");
    auto a = mail::ParseAddress(rest);
    if (!a.ok() || a->null) {
      Error("syntax", t, "bad address in an alias");
      return;
    }
    Parsed(*a, depth, no_alias);
  }

  // Targets of a file (:include: or .forward): one level deeper.
  void FileTargets(const std::string& key, const std::string& path,
                   int depth, bool trusted) {
    if (depth > st_.conf.max_alias_depth) {
      ChainError("loop", path, DepthText());
      return;
    }
    auto text = fs::ReadFile(path, kMaxIncludeBytes);
    if (!text.ok()) {
      Error("include", path,
            StrCat("cannot read ", path, ": ", Message(text.status())));
      return;
    }
    auto targets = relations::ParseIncludeFile(*text, path);
    if (!targets.ok()) {
      Error("include", path, Message(targets.status()));
      return;
    }
    if (std::find(chain_.begin(), chain_.end(), key) != chain_.end()) {
      chain_.push_back(key);
      ChainError("loop", path, "alias loop");
      chain_.pop_back();
      return;
    }
    Trace(key, Join(*targets, ", "));
    chain_.push_back(key);
    for (const std::string& t : *targets) Target(t, depth + 1, trusted);
    chain_.pop_back();
  }

  void Include(const std::string& path, int depth) {
    FileTargets(":include:" + path, path, depth, /*trusted=*/true);
  }

  void Parsed(const mail::Address& a, int depth, bool no_alias) {
    if (depth > st_.conf.max_alias_depth) {
      ChainError("loop", a.ToString(), DepthText());
      return;
    }
    std::string local = mail::UnquoteLocalPart(a.local);
    std::string lower = ToLower(local);
    if (!a.domain.empty() && !no_alias) {
      std::string full = StrCat(lower, "@", a.domain);
      if (auto v = Find("fqdnaliases", full)) {
        Trace(answered_, StrCat(full, " -> ", Shown(*v)));
        std::string owner = StrCat("owner-", full);
        std::optional<std::string> sender;
        if (st_.Lookup("fqdnaliases", owner)) sender = owner;
        Expand(full, *v, depth, sender);
        return;
      }
    }
    if (a.domain.empty() || IsOwn(a.domain)) {
      Trace("own domain", a.domain.empty() ? "(no domain)" : a.domain);
      Local(a, lower, depth, no_alias);
      return;
    }
    Remote(a, depth);
  }

  static std::string Shown(const std::string& stored) {
    return Join(relations::SplitStoredTargets(stored), ", ");
  }

  void Local(const mail::Address& a, const std::string& name, int depth,
             bool no_alias) {
    if (!name.empty() && (name.front() == '|' || name.front() == '/')) {
      Error("refused", a.ToString(),
            "pipes and files are only allowed as alias targets");
      return;
    }
    if (!no_alias) {
      if (auto v = Find("aliases", name)) {
        Trace(answered_, StrCat(name, " -> ", Shown(*v)));
        std::optional<std::string> sender;
        if (!StartsWithIgnoreCase(name, "owner-") &&
            st_.Lookup("aliases", "owner-" + name)) {
          sender = StrCat("owner-", name, "@", st_.OwnDomain());
        }
        Expand(name, *v, depth, sender);
        return;
      }
    }
    User(a, name, depth, no_alias);
  }

  void User(const mail::Address& a, const std::string& name, int depth,
            bool no_alias) {
    if (auto v = Find("userdb", name)) {
      Trace(answered_, StrCat(name, " -> ", v->empty() ? "(known)" : *v));
      Add({"local", name, name, "", ""});
      return;
    }
    UserInfo u = FindUser(st_.node, name);
    if (!u.known) {
      Trace("user", StrCat(name, ": unknown"));
      Error("nouser", a.ToString(), "user unknown");
      return;
    }
    if (st_.conf.forward && !no_alias && Forward(name, u, depth)) return;
    Trace("user", StrCat(name, ": local mailbox"));
    Add({"local", name, name, "", ""});
  }

  // The user's .forward (router.conf forward yes). Pipes and files in it
  // are trusted only if the file belongs to the user (or root) and nobody
  // else may write it.
  bool Forward(const std::string& name, const UserInfo& u, int depth) {
    std::string path;
    std::string_view pat = st_.conf.forward_file;
    for (size_t i = 0; i < pat.size(); ++i) {
      if (pat[i] == '%' && i + 1 < pat.size() &&
          (pat[i + 1] == 'h' || pat[i + 1] == 'u')) {
        if (pat[i + 1] == 'h') {
          if (u.home.empty()) return false;
          path += u.home;
        } else {
          path += name;
        }
        ++i;
      } else {
        path += pat[i];
      }
    }
    struct stat sb;
    if (::stat(path.c_str(), &sb) != 0 || !S_ISREG(sb.st_mode)) return false;
    bool trusted = (sb.st_uid == u.uid || sb.st_uid == 0) &&
                   (sb.st_mode & (S_IWGRP | S_IWOTH)) == 0;
    Trace(".forward", StrCat(path, trusted ? "" : " (not trusted: no pipes "
                                                  "or files)"));
    // `\name` (or `name` itself) in it means the user's own mailbox.
    std::string key = StrCat(".forward:", name);
    if (std::find(chain_.begin(), chain_.end(), key) != chain_.end()) {
      return false;
    }
    FileTargets(key, path, depth, trusted);
    return true;
  }

  void Expand(const std::string& key, const std::string& value, int depth,
              const std::optional<std::string>& owner) {
    if (std::find(chain_.begin(), chain_.end(), key) != chain_.end()) {
      chain_.push_back(key);
      ChainError("loop", key, "alias loop");
      chain_.pop_back();
      return;
    }
    if (owner) {
      Trace("owner", StrCat("envelope sender becomes <", *owner, ">"));
      owners_.push_back(*owner);
    }
    chain_.push_back(key);
    for (const std::string& t : relations::SplitStoredTargets(value)) {
      // `alice: alice, bob` keeps a copy for alice herself: a target that
      // names the alias being expanded is delivered without aliasing.
      auto a = mail::ParseAddress(t);
      if (a.ok() && !a->null && t.front() != '\\') {
        std::string lower = ToLower(mail::UnquoteLocalPart(a->local));
        bool own = a->domain.empty() || IsOwn(a->domain);
        if ((own && lower == key) || StrCat(lower, "@", a->domain) == key) {
          Parsed(*a, depth + 1, /*no_alias=*/true);
          continue;
        }
      }
      Target(t, depth + 1, /*trusted=*/true);
    }
    chain_.pop_back();
    if (owner) owners_.pop_back();
  }

  // Domain lookups walk a.b.c, .a.b.c, .b.c, .c, "." (ZMailer's order).
  std::optional<std::string> RouteFor(const std::string& domain) {
    if (!st_.HasRole("routes")) return std::nullopt;
    std::vector<std::string> keys = {domain};
    std::string_view d = domain;
    if (d.front() != '[') {
      for (;;) {
        keys.push_back(StrCat(".", d));
        size_t dot = d.find('.');
        if (dot == std::string_view::npos) break;
        d = d.substr(dot + 1);
      }
    }
    keys.push_back(".");
    for (const std::string& k : keys) {
      if (auto v = Find("routes", k)) {
        Trace(answered_, StrCat(k, " -> ", *v));
        return v;
      }
    }
    Trace("routesdb", StrCat("no entry for ", domain, " or its parents"));
    return std::nullopt;
  }

  void Remote(const mail::Address& a, int depth) {
    std::string user = a.ToString();
    auto route = RouteFor(a.domain);
    if (!route) {
      if (!DomainCanReceive(a.domain, user)) return;
      Add({"smtp", a.domain, user, "", ""});
      return;
    }
    std::string_view v = Trim(*route);
    size_t bang = v.find('!');
    std::string channel(Trim(v.substr(0, bang)));
    std::string host = bang == std::string_view::npos
                           ? std::string()
                           : std::string(Trim(v.substr(bang + 1)));
    if (channel.empty()) channel = "smtp";
    if (channel == "local") {
      Local(a, ToLower(mail::UnquoteLocalPart(a.local)), depth, false);
      return;
    }
    if (channel == "error") {
      std::string_view text = host.empty() ? std::string_view("nouser") : host;
      size_t sp = text.find_first_of(" \t");
      std::string h(text.substr(0, sp));
      std::string diag = sp == std::string_view::npos
                             ? (h == "nouser" ? "user unknown" : h)
                             : std::string(Trim(text.substr(sp)));
      Error(h, user, diag);
      return;
    }
    Add({channel, host.empty() ? a.domain : host, user, "", ""});
  }

  // MX, else A/AAAA (RFC 5321 5.1). False after adding an error or hold
  // route for `user`.
  bool DomainCanReceive(const std::string& domain, const std::string& user) {
    if (!st_.conf.dns_check || resolver_ == nullptr || domain.empty() ||
        domain.front() == '[') {
      return true;
    }
    auto mx = resolver_->LookupMx(domain);
    CountLookup("mx", mx.status());
    if (mx.ok() && !mx->empty()) {
      if (mx->size() == 1 && (*mx)[0].host.empty()) {
        Trace("dns", StrCat(domain, " MX 0 . (null MX)"));
        Error("nullmx", user,
              StrCat(domain, " does not accept mail (null MX, RFC 7505)"));
        return false;
      }
      std::vector<std::string> hosts;
      for (const dns::MxRecord& m : *mx) {
        hosts.push_back(StrCat(m.preference, " ", m.host));
      }
      Trace("dns", StrCat(domain, " MX ", Join(hosts, ", ")));
      return true;
    }
    if (mx.ok()) {
      auto a = resolver_->LookupA(domain);
      CountLookup("a", a.status());
      if (a.ok() && !a->empty()) {
        Trace("dns", StrCat(domain, " no MX, A ", Join(*a, ", ")));
        return true;
      }
      auto aaaa = resolver_->LookupAaaa(domain);
      CountLookup("aaaa", aaaa.status());
      if (aaaa.ok() && !aaaa->empty()) {
        Trace("dns", StrCat(domain, " no MX, AAAA ", Join(*aaaa, ", ")));
        return true;
      }
      absl::Status bad = !a.ok() ? a.status() : aaaa.status();
      if (bad.ok()) {
        Trace("dns", StrCat(domain, " has no MX, A or AAAA record"));
        Error("nodomain", user,
              StrCat(domain, " has no MX, A or AAAA record"));
        return false;
      }
      return DnsFailure(domain, user, bad);
    }
    return DnsFailure(domain, user, mx.status());
  }

  // zmnode_dns_lookups_total and, but for "no such domain",
  // zmnode_dns_failures_total.
  void CountLookup(std::string_view type, const absl::Status& s) {
    if (metrics_ == nullptr) return;
    metrics_->GetCounter(metrics::kDnsLookups, {{"type", type}}).Inc();
    if (!s.ok() && !absl::IsNotFound(s)) {
      metrics_->GetCounter(metrics::kDnsFailures, {{"type", type}}).Inc();
    }
  }

  bool DnsFailure(const std::string& domain, const std::string& user,
                  const absl::Status& s) {
    Trace("dns", Message(s));
    if (absl::IsNotFound(s)) {
      Error("nodomain", user, StrCat("no such domain ", domain));
    } else if (absl::IsInvalidArgument(s)) {
      Error("syntax", user, StrCat("invalid domain ", domain));
    } else {
      Add({"hold", StrCat("dns:", domain), user, Message(s), ""});
    }
    return false;
  }

  const State& st_;
  dns::Resolver* resolver_;
  std::vector<Route>* out_;
  std::vector<std::string>* trace_;
  metrics::Registry* metrics_;
  std::vector<std::string> chain_;
  std::vector<std::string> owners_;
  std::string_view answered_;  // the relation of the last Find() hit
  bool overflowed_ = false;
};

class RoutingImpl : public Routing {
 public:
  RoutingImpl(std::shared_ptr<const State> st,
              std::unique_ptr<dns::Resolver> own_resolver,
              dns::Resolver* resolver, metrics::Registry* metrics)
      : own_resolver_(std::move(own_resolver)),
        resolver_(resolver != nullptr ? resolver : own_resolver_.get()),
        metrics_(metrics),
        state_(std::move(st)) {}

  std::vector<Route> RouteAddress(std::string_view address,
                                  std::vector<std::string>* trace) override {
    std::shared_ptr<const State> st = Snapshot();
    std::vector<Route> routes;
    Walk(*st, resolver_, &routes, trace, metrics_).Recipient(address);
    // One delivery per destination, in first-seen order.
    std::vector<Route> unique;
    for (Route& r : routes) {
      auto same = [&](const Route& u) {
        return u.channel == r.channel && u.host == r.host && u.user == r.user;
      };
      if (std::find_if(unique.begin(), unique.end(), same) == unique.end()) {
        unique.push_back(std::move(r));
      }
    }
    return unique;
  }

  absl::Status ReloadIfChanged() override {
    absl::MutexLock reload(&reload_mu_);
    std::shared_ptr<const State> st = Snapshot();
    bool changed = false;
    auto next = std::make_shared<State>(*st);
    for (auto& [role, dbs] : next->by_role) {
      for (Db& d : dbs) {
        // Flag -m: follow recompilations; others change on SIGHUP only.
        if (!d.spec.reload_on_change || !d.db->Changed()) continue;
        auto db = RelationDb::Open(st->node.db(), d.spec.name);
        if (!db.ok()) return db.status();
        d.db = std::shared_ptr<const RelationDb>(std::move(*db));
        changed = true;
      }
    }
    if (changed) {
      absl::MutexLock l(&mu_);
      state_ = std::move(next);
    }
    return absl::OkStatus();
  }

 private:
  std::shared_ptr<const State> Snapshot() {
    absl::MutexLock l(&mu_);
    return state_;
  }

  std::unique_ptr<dns::Resolver> own_resolver_;
  dns::Resolver* resolver_;
  metrics::Registry* metrics_;
  absl::Mutex reload_mu_;
  absl::Mutex mu_;
  std::shared_ptr<const State> state_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::StatusOr<std::unique_ptr<Routing>> Routing::Open(
    const NodeDir& node, const RoutingOptions& options) {
  auto st = std::make_shared<State>();
  st->node = node;
  auto mc = config::LoadMailConf(node);
  if (!mc.ok()) return mc.status();
  st->mail = *mc;
  auto rc = LoadRouterConf(node);
  if (!rc.ok()) return rc.status();
  st->conf = *rc;
  for (const std::string& n :
       {ToLower(mc->hostname), ToLower(mc->mydomain), std::string("localhost"),
        std::string("[127.0.0.1]"), std::string("[ipv6:::1]")}) {
    std::string_view v = n;
    if (!v.empty() && v.back() == '.') v.remove_suffix(1);
    if (!v.empty()) st->own.insert(std::string(v));
  }
  auto specs = relations::LoadDbasesConf(node);
  if (!specs.ok()) return specs.status();
  // Which relations each step consults: router.conf `relations`, else the
  // built-in names present in dbases.conf.
  std::map<std::string, std::vector<const relations::RelationSpec*>> plan;
  for (const relations::RelationSpec& spec : *specs) {
    for (const UsedRelation& u : kUsed) {
      if (u.name == spec.name && !st->conf.relations.count(u.role)) {
        plan[std::string(u.role)].push_back(&spec);
      }
    }
  }
  for (const auto& [step, sr] : st->conf.relations) {
    for (const std::string& name : sr.names) {
      auto it = std::find_if(
          specs->begin(), specs->end(),
          [&](const relations::RelationSpec& s) { return s.name == name; });
      if (it == specs->end()) {
        return config::Error(st->conf.path, sr.line,
                             StrCat("relation '", name, "' is not listed in ",
                                    node.etc_file("dbases.conf")));
      }
      plan[step].push_back(&*it);
    }
  }
  std::map<std::string, std::shared_ptr<const RelationDb>> opened;
  for (const auto& [step, list] : plan) {
    for (const relations::RelationSpec* spec : list) {
      std::shared_ptr<const RelationDb>& shared = opened[spec->name];
      if (!shared) {
        auto db = RelationDb::Open(node.db(), spec->name);
        if (!db.ok()) {
          if (absl::IsNotFound(db.status())) {
            return absl::FailedPreconditionError(StrCat(
                "relation '", spec->name, "' (", spec->conf_file, ":",
                spec->conf_line, ") is not compiled: run `zmailer newdb`"));
          }
          return db.status();
        }
        shared = std::move(*db);
      }
      st->by_role[step].push_back(Db{*spec, shared});
    }
  }
  std::unique_ptr<dns::Resolver> own;
  if (st->conf.dns_check && options.resolver == nullptr) {
    auto ro = dns::OptionsForNode(node);
    if (!ro.ok()) return ro.status();
    auto r = dns::Resolver::Create(*ro);
    if (!r.ok()) return r.status();
    own = std::move(*r);
  }
  return std::unique_ptr<Routing>(new RoutingImpl(
      std::move(st), std::move(own), options.resolver, options.metrics));
}

}  // namespace zm::router
