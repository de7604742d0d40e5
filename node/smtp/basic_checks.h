// zm::smtp::BasicChecks: the simplest complete policy, for trusted local
// submission (sendmail -bs), unit tests and the fuzzer; the smtpserver's
// own Checks build on the same relay rule.
//
//   NodeDomains domains;                 // a LocalDomains
//   smtp::BasicChecks checks(domains);
//   checks.AddUser("alice", "secret");   // optional: AUTH accounts
//   ... case Action::kCheck:
//         s.CheckDone(checks.Decide(s, s.pending_check()));
//
// Decisions: connections, HELO, senders, data and messages are accepted.
// A recipient is accepted when it has no domain (<postmaster>, a local
// user), when its domain is local (LocalDomains) or the address literal
// of the address the client connected to, or when the session may relay
// (trusted client, authenticated user); anything else is refused with
// 554 5.7.1 echoing the address (no open relay). AUTH succeeds for the
// accounts added with AddUser (535 5.7.8 otherwise) and then allows
// relaying. ETRN is refused with 458 (no scheduler to ask); VRFY and EXPN
// get the Session's 252.
//
// Thread-safe after setup (AddUser before sessions use it).
#ifndef ZM_SMTP_BASIC_CHECKS_H_
#define ZM_SMTP_BASIC_CHECKS_H_

#include <map>
#include <string>
#include <string_view>

#include "node/smtp/check.h"
#include "node/smtp/session.h"

namespace zm::smtp {

// Which recipient domains this node accepts mail for. Implemented by the
// smtpserver over mail.conf and localnames; a fake in tests.
class LocalDomains {
 public:
  virtual ~LocalDomains() = default;
  // `domain` is lower-case, without a trailing dot.
  virtual bool IsLocal(std::string_view domain) const = 0;
};

// The relay rule alone: may `session` send to `address`?
bool RecipientAllowed(const Session& session, const LocalDomains& domains,
                      std::string_view address);

// The 554 5.7.1 reply for a refused relay attempt, naming the address.
Reply RelayDeniedReply(std::string_view address);

class BasicChecks : public Checks {
 public:
  // `domains` must outlive this.
  explicit BasicChecks(const LocalDomains& domains) : domains_(domains) {}

  void AddUser(std::string user, std::string password) {
    users_[std::move(user)] = std::move(password);
  }

  Verdict Decide(const Session& session, const Check& check) override;

 private:
  const LocalDomains& domains_;
  std::map<std::string, std::string, std::less<>> users_;
};

}  // namespace zm::smtp

#endif  // ZM_SMTP_BASIC_CHECKS_H_
