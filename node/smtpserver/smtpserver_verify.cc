#include "node/smtpserver/smtpserver_verify.h"

#include <pwd.h>

#include <utility>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/relations/relation_db.h"
#include "node/relations/relation_source.h"

namespace zm::smtpserver {
namespace {

bool IsLogin(const std::string& name) {
  struct passwd pw;
  struct passwd* result = nullptr;
  char buf[4096];
  return ::getpwnam_r(name.c_str(), &pw, buf, sizeof(buf), &result) == 0 &&
         result != nullptr;
}

// A name usable as one path component.
bool SafeName(std::string_view s) {
  if (s.empty() || s == "." || s == "..") return false;
  for (char c : s) {
    if (c == '/' || c == '\0') return false;
  }
  return true;
}

}  // namespace

RecipientVerifier::RecipientVerifier(NodeDir node) : node_(std::move(node)) {}
RecipientVerifier::~RecipientVerifier() = default;

std::optional<std::string> RecipientVerifier::Relation(
    const std::string& name, const std::string& key) {
  std::shared_ptr<relations::RelationDb> db;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = open_.find(name);
    if (it == open_.end() || !it->second || it->second->Changed()) {
      auto fresh = relations::RelationDb::Open(node_.db(), name);
      open_[name] = fresh.ok() ? std::shared_ptr<relations::RelationDb>(
                                     std::move(*fresh))
                               : nullptr;
    }
    db = open_[name];
  }
  if (!db) return std::nullopt;
  return db->Lookup(key);
}

RecipientVerifier::Answer RecipientVerifier::Lookup(std::string_view local,
                                                    std::string_view domain) {
  Answer a;
  std::string user = ToLower(local);
  std::string dom = ToLower(domain);
  if (!dom.empty()) {
    if (auto v = Relation("fqdnaliases", StrCat(user, "@", dom))) {
      a.kind = Kind::kAlias;
      a.expansion = relations::SplitStoredTargets(*v);
      return a;
    }
  }
  if (auto v = Relation("aliases", user)) {
    a.kind = Kind::kAlias;
    a.expansion = relations::SplitStoredTargets(*v);
    return a;
  }
  if (!dom.empty() && Relation("routesdb", dom)) {
    a.kind = Kind::kRouted;
    return a;
  }
  if (user == "postmaster") {  // RFC 5321: always exists
    a.kind = Kind::kPostmaster;
    return a;
  }
  if (!SafeName(user)) return a;
  if (IsLogin(user) || fs::Exists(StrCat(node_.mail(), "/", user))) {
    a.kind = Kind::kUser;
    return a;
  }
  if (fs::Exists(node_.etc_file(StrCat("lists/", user)))) {
    a.kind = Kind::kList;
    return a;
  }
  return a;
}

}  // namespace zm::smtpserver
