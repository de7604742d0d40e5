// zm::smtpserver::MailAuth: SPF, DKIM, DMARC and DKIM signing in the
// smtpserver's policy checks (zm::mailauth does the work).
//
// Inbound, for sessions on the smtp listener (port 25) that may not relay
// (no AUTH, not a trusted network):
//   - at MAIL FROM, SPF of the sender (the HELO name for the null sender);
//     `PARAM spf-threshold fail|softfail|none|neutral|pass` refuses the
//     sender when the result is at or below it (550 5.7.23; permerror
//     counts as none, 5.7.24; temperror never refuses);
//   - at the end of data (the staged message), DKIM verification of every
//     signature (`PARAM dkim-verify`) and DMARC (`PARAM dmarc`) for the
//     From: domain: p=reject -> 550 5.7.1, p=quarantine -> freeze (or
//     freezer/<id>.<NAME> with `PARAM dmarc-quarantine folder NAME`),
//     p=none -> recorded;
//   - one Authentication-Results: header (and Received-SPF: with
//     `PARAM spf-received`) on top of the message, and one log line with
//     the results and the queue id.
// smtp-policy attributes (looked up for the client's address, then for the
// envelope sender; the first found wins) choose what each result does:
//   mailauth -            no inbound checks for this client (client only);
//                         `mailauth +` checks a trusted network's clients
//   spf -                 no SPF for this client or sender
//   spf-fail ACTION       also spf-softfail, spf-neutral, spf-none,
//                         spf-permerror, spf-temperror (over spf-threshold)
//   dkim-fail ACTION      no signature passes and one fails
//   dkim-none ACTION      no signature at all
//   dmarc-reject ACTION   DMARC fails under p=reject (default reject);
//                         also dmarc-quarantine (default freeze),
//                         dmarc-none (default accept)
// ACTION is reject (SPF: at MAIL FROM), freeze, tag (an
// X-Authentication-Warning: header) or accept.
// Outbound: a relay-allowed session (AUTH, trusted network) whose message
// has a From: domain in the key table (etc/dkim-keys, or `PARAM
// dkim-keys FILE`) gets a DKIM-Signature.
//
//   auto ma = MakeMailAuth(config, node, resolver, log, hostname);
//   if (!ma.ok()) ...;           // bad key table: file:line
//   if (*ma == nullptr) ...;     // nothing configured
//   if (auto r = (*ma)->MailFrom(session, check, policy, client_attrs,
//                                relay_allowed))
//     return *r;                                            // refused
//   MessageAuth m = (*ma)->Message(session, check, policy, client_attrs,
//                                  relay_allowed);
//
// Thread-safe; the resolver and log must outlive it.
#ifndef ZM_SMTPSERVER_SMTPSERVER_MAILAUTH_H_
#define ZM_SMTPSERVER_SMTPSERVER_MAILAUTH_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "node/common/log.h"
#include "node/common/node_dir.h"
#include "node/smtp/check.h"
#include "node/smtpserver/smtpserver_config.h"

namespace zm {
namespace dns {
class Resolver;
}
namespace smtp {
class Session;
}
}  // namespace zm

namespace zm::smtpserver {

class Policy;
class PolicyAttrs;

// What an smtp-policy attribute such as `spf-fail` or `dmarc-none` asks
// for (see above); the stricter of two wins (reject > freeze > tag >
// accept).
enum class AuthAction { kAccept, kTag, kFreeze, kReject };

inline constexpr std::string_view kAuthActionAttributes[] = {
    "spf-fail",      "spf-softfail",  "spf-neutral",  "spf-none",
    "spf-permerror", "spf-temperror", "dkim-fail",    "dkim-none",
    "dmarc-reject",  "dmarc-quarantine", "dmarc-none",
};

inline bool IsAuthActionAttribute(std::string_view name) {
  for (std::string_view a : kAuthActionAttributes) {
    if (a == name) return true;
  }
  return false;
}

// "reject", "freeze", "tag", "accept" (lower case); nullopt otherwise.
inline std::optional<AuthAction> ParseAuthAction(std::string_view v) {
  if (v == "reject") return AuthAction::kReject;
  if (v == "freeze") return AuthAction::kFreeze;
  if (v == "tag") return AuthAction::kTag;
  if (v == "accept") return AuthAction::kAccept;
  return std::nullopt;
}

// What the end-of-data step decided.
struct MessageAuth {
  std::optional<smtp::Verdict> reject;  // DMARC p=reject, spool errors
  std::string freeze_reason;  // DMARC quarantine ("" = none); its first
                              // word is the freezer cause ("dmarc", NAME)
  std::string headers;  // to put on top of the message (A-R, DKIM-Signature)
};

class MailAuth {
 public:
  virtual ~MailAuth() = default;
  // kMailFrom: SPF for an inbound session (not relay-allowed, unless
  // `mailauth +`); a refusal when an spf-* attribute or spf-threshold says
  // so. Remembers the result for the message. `policy` is smtp-policy.
  // `client`: the attributes of the client's address (the session's one
  // ForIp lookup).
  virtual std::optional<smtp::Verdict> MailFrom(const smtp::Session& session,
                                                const smtp::Check& check,
                                                const Policy& policy,
                                                const PolicyAttrs& client,
                                                bool relay_allowed) = 0;
  // kMessage: reads the staged file (check.staged_path).
  virtual MessageAuth Message(const smtp::Session& session,
                              const smtp::Check& check, const Policy& policy,
                              const PolicyAttrs& client,
                              bool relay_allowed) = 0;
};

// nullptr when neither an inbound check nor a key table is configured.
// `dns` may be null: then the inbound checks are off (logged).
absl::StatusOr<std::unique_ptr<MailAuth>> MakeMailAuth(
    const ServerConfig& config, const NodeDir& node, dns::Resolver* dns,
    Logger& log, std::string hostname);

}  // namespace zm::smtpserver

#endif  // ZM_SMTPSERVER_SMTPSERVER_MAILAUTH_H_
