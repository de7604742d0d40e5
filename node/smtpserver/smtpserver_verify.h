// Recipient verification at the front door (ZMailer's enable-router and
// the `e` HELO style flag): does a local recipient exist?
//
// A light lookup in the router's compiled relations, not a routing run:
//   fqdnaliases "user@domain", aliases "user", routesdb "domain" (a routed
//   domain is the route's business: accepted), local users (getpwnam),
//   mailboxes under mail/, mailing lists (etc/lists/<name>), and
//   postmaster, which always exists (RFC 5321).
//
//   RecipientVerifier v(node);
//   auto a = v.Lookup("alice", "example.org");
//   if (a.kind == RecipientVerifier::Kind::kUnknown) ... 550 5.1.1
//   for (auto& t : a.expansion) ...   // EXPN: an alias's targets
//
// Relations are opened when first needed and reopened when `zmailer newdb`
// swaps in a new generation. Thread-safe.
#ifndef ZM_SMTPSERVER_SMTPSERVER_VERIFY_H_
#define ZM_SMTPSERVER_SMTPSERVER_VERIFY_H_

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "node/common/node_dir.h"

namespace zm::relations {
class RelationDb;
}

namespace zm::smtpserver {

class RecipientVerifier {
 public:
  enum class Kind {
    kUnknown,
    kPostmaster,
    kAlias,    // aliases or fqdnaliases; expansion = its targets
    kRouted,   // routesdb has the domain
    kUser,     // a login (getpwnam) or a mailbox under mail/
    kList,     // etc/lists/<name>
  };
  struct Answer {
    Kind kind = Kind::kUnknown;
    std::vector<std::string> expansion;
    bool exists() const { return kind != Kind::kUnknown; }
  };

  explicit RecipientVerifier(NodeDir node);
  ~RecipientVerifier();

  // `local`: the local part as given; `domain`: "" or a domain of ours.
  Answer Lookup(std::string_view local, std::string_view domain);

 private:
  std::optional<std::string> Relation(const std::string& name,
                                      const std::string& key);

  const NodeDir node_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<relations::RelationDb>> open_;
};

}  // namespace zm::smtpserver

#endif  // ZM_SMTPSERVER_SMTPSERVER_VERIFY_H_
