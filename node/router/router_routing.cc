// Routing: own names, aliases (recursive), local users, routes, smtp.
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "absl/synchronization/mutex.h"
#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/config/mail_conf.h"
#include "node/mail/address.h"
#include "node/relations/dbases_conf.h"
#include "node/relations/relation_db.h"
#include "node/relations/relation_source.h"
#include "node/router/routing.h"

namespace zm::router {
namespace {

using relations::RelationDb;

// Bounds of one recipient's expansion.
constexpr int kMaxAliasDepth = 10;
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
};

struct Db {
  relations::RelationSpec spec;
  std::shared_ptr<const RelationDb> db;
};

// An immutable view of the configuration; swapped whole on reload.
struct State {
  NodeDir node;
  config::MailConf mail;
  std::set<std::string> own;  // lower-case own domain names
  std::map<std::string, Db> by_role;

  const Db* Role(std::string_view role) const {
    auto it = by_role.find(std::string(role));
    return it == by_role.end() ? nullptr : &it->second;
  }
  std::optional<std::string> Lookup(std::string_view role,
                                    std::string_view key) const {
    const Db* d = Role(role);
    if (d == nullptr) return std::nullopt;
    return d->db->Lookup(key);
  }
};

bool IsLocalUser(const NodeDir& node, const std::string& name) {
  if (name.empty() || name.size() > 256 || name.front() == '.' ||
      name.find('/') != std::string::npos) {
    return false;
  }
  struct passwd pw;
  struct passwd* found = nullptr;
  char buf[4096];
  if (::getpwnam_r(name.c_str(), &pw, buf, sizeof buf, &found) == 0 &&
      found != nullptr) {
    return true;
  }
  return fs::Exists(node.mail() + "/" + name);
}

// One recipient's walk through aliases and routes.
class Walk {
 public:
  Walk(const State& st, std::vector<Route>* out) : st_(st), out_(out) {}

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
    Parsed(*a, 0, /*no_alias=*/false);
  }

 private:
  void Add(Route r) {
    if (out_->size() >= kMaxRoutesPerRecipient) {
      if (!overflowed_) {
        overflowed_ = true;
        out_->push_back({"error", "toomany", r.user,
                         "alias expansion gives too many recipients"});
      }
      return;
    }
    out_->push_back(std::move(r));
  }
  void Error(std::string_view host, std::string_view user,
             std::string_view diag) {
    Add({"error", std::string(host), std::string(user), std::string(diag)});
  }

  bool IsOwn(const std::string& domain) const {
    if (st_.own.count(domain)) return true;
    return st_.Lookup("thishost", domain).has_value();
  }

  // A target from an alias or an :include: file (trusted).
  void Target(const std::string& t, int depth) {
    if (t.front() == '|') {
      Add({"local", "pipe", t, ""});
      return;
    }
    if (t.front() == '/') {
      Add({"local", "file", t, ""});
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

  void Include(const std::string& path, int depth) {
    if (depth > kMaxAliasDepth) {
      Error("loop", path, "alias nesting deeper than 10");
      return;
    }
    auto text = fs::ReadFile(path, kMaxIncludeBytes);
    if (!text.ok()) {
      Error("include", path,
            StrCat("cannot read :include: file: ", Message(text.status())));
      return;
    }
    auto targets = relations::ParseIncludeFile(*text, path);
    if (!targets.ok()) {
      Error("include", path, Message(targets.status()));
      return;
    }
    std::string key = ":include:" + path;
    if (std::find(chain_.begin(), chain_.end(), key) != chain_.end()) {
      Error("loop", path, "alias loop");
      return;
    }
    chain_.push_back(key);
    for (const std::string& t : *targets) Target(t, depth + 1);
    chain_.pop_back();
  }

  void Parsed(const mail::Address& a, int depth, bool no_alias) {
    if (depth > kMaxAliasDepth) {
      Error("loop", a.ToString(), "alias nesting deeper than 10");
      return;
    }
    std::string local = mail::UnquoteLocalPart(a.local);
    std::string lower = ToLower(local);
    if (!a.domain.empty() && !no_alias) {
      std::string full = StrCat(lower, "@", a.domain);
      if (auto v = st_.Lookup("fqdnaliases", full)) {
        Expand(full, *v, depth);
        return;
      }
    }
    if (a.domain.empty() || IsOwn(a.domain)) {
      Local(a, lower, depth, no_alias);
      return;
    }
    Remote(a, depth);
  }

  void Local(const mail::Address& a, const std::string& name, int depth,
             bool no_alias) {
    if (!name.empty() && (name.front() == '|' || name.front() == '/')) {
      Error("refused", a.ToString(),
            "pipes and files are only allowed as alias targets");
      return;
    }
    if (!no_alias) {
      if (auto v = st_.Lookup("aliases", name)) {
        Expand(name, *v, depth);
        return;
      }
    }
    User(a, name);
  }

  void User(const mail::Address& a, const std::string& name) {
    if (IsLocalUser(st_.node, name)) {
      Add({"local", name, name, ""});
    } else {
      Error("nouser", a.ToString(), "user unknown");
    }
  }

  void Expand(const std::string& key, const std::string& value, int depth) {
    if (std::find(chain_.begin(), chain_.end(), key) != chain_.end()) {
      Error("loop", key, "alias loop");
      return;
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
      Target(t, depth + 1);
    }
    chain_.pop_back();
  }

  // Domain lookups walk a.b.c, .a.b.c, .b.c, .c, "." (ZMailer's order).
  std::optional<std::string> RouteFor(const std::string& domain) const {
    if (st_.Role("routes") == nullptr) return std::nullopt;
    if (auto v = st_.Lookup("routes", domain)) return v;
    std::string_view d = domain;
    if (d.front() == '[') return st_.Lookup("routes", ".");
    for (;;) {
      if (auto v = st_.Lookup("routes", StrCat(".", d))) return v;
      size_t dot = d.find('.');
      if (dot == std::string_view::npos) break;
      d = d.substr(dot + 1);
    }
    return st_.Lookup("routes", ".");
  }

  void Remote(const mail::Address& a, int depth) {
    std::string user = a.ToString();
    auto route = RouteFor(a.domain);
    if (!route) {
      Add({"smtp", a.domain, user, ""});
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
    Add({channel, host.empty() ? a.domain : host, user, ""});
  }

  const State& st_;
  std::vector<Route>* out_;
  std::vector<std::string> chain_;
  bool overflowed_ = false;
};

class RoutingImpl : public Routing {
 public:
  explicit RoutingImpl(std::shared_ptr<const State> st)
      : state_(std::move(st)) {}

  std::vector<Route> RouteAddress(std::string_view address) override {
    std::shared_ptr<const State> st = Snapshot();
    std::vector<Route> routes;
    Walk(*st, &routes).Recipient(address);
    // One delivery per destination, in first-seen order.
    std::vector<Route> unique;
    for (Route& r : routes) {
      if (std::find(unique.begin(), unique.end(), r) == unique.end()) {
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
    for (auto& [role, d] : next->by_role) {
      // Flag -m: follow recompilations; others change on SIGHUP only.
      if (!d.spec.reload_on_change || !d.db->Changed()) continue;
      auto db = RelationDb::Open(st->node.db(), d.spec.name);
      if (!db.ok()) return db.status();
      d.db = std::shared_ptr<const RelationDb>(std::move(*db));
      changed = true;
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

  absl::Mutex reload_mu_;
  absl::Mutex mu_;
  std::shared_ptr<const State> state_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::StatusOr<std::unique_ptr<Routing>> Routing::Open(const NodeDir& node) {
  auto st = std::make_shared<State>();
  st->node = node;
  auto mc = config::LoadMailConf(node);
  if (!mc.ok()) return mc.status();
  st->mail = *mc;
  for (const std::string& n :
       {ToLower(mc->hostname), ToLower(mc->mydomain), std::string("localhost"),
        std::string("[127.0.0.1]"), std::string("[ipv6:::1]")}) {
    std::string_view v = n;
    if (!v.empty() && v.back() == '.') v.remove_suffix(1);
    if (!v.empty()) st->own.insert(std::string(v));
  }
  auto specs = relations::LoadDbasesConf(node);
  if (!specs.ok()) return specs.status();
  for (const relations::RelationSpec& spec : *specs) {
    std::string_view role;
    for (const UsedRelation& u : kUsed) {
      if (u.name == spec.name) role = u.role;
    }
    if (role.empty()) continue;  // compiled, but not the router's business
    auto db = RelationDb::Open(node.db(), spec.name);
    if (!db.ok()) {
      if (absl::IsNotFound(db.status())) {
        return absl::FailedPreconditionError(
            StrCat("relation '", spec.name, "' (", spec.conf_file, ":",
                   spec.conf_line, ") is not compiled: run `zmailer newdb`"));
      }
      return db.status();
    }
    st->by_role[std::string(role)] =
        Db{spec, std::shared_ptr<const RelationDb>(std::move(*db))};
  }
  return std::unique_ptr<Routing>(new RoutingImpl(std::move(st)));
}

}  // namespace zm::router
