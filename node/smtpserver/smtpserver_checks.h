// The smtpserver's smtp::Checks: every policy decision of a session.
//
// Combines the compiled smtp-policy database (smtpserver_policy.h), the
// HELO pattern lines of smtpserver.conf, the rate-tracker, recipient
// verification against the router's relations (smtpserver_verify.h), AUTH
// (Authenticator) and the content filter (ContentFilter):
//
//   CheckDeps deps{.node = &node, .log = &log, .rates = rates.get(),
//                  .auth = auth.get(), .dns = resolver.get(),
//                  .filter = filter.get()};
//   std::unique_ptr<SessionChecks> checks = MakePolicyChecks(settings, deps);
//   checks->SetClientAttrs(session, attrs);  // the driver's own ForIp
//   smtp::Verdict v = checks->Decide(session, session.pending_check());
//   ...
//   checks->Forget(session);  // the session is over
//
// Every dependency but `node` may be null: no rate-tracker means no rate
// limits and no auth-failrate, no Authenticator means every AUTH fails
// (535 5.7.8), no resolver means senderokwithdns is not enforced, no
// filter means messages are accepted unfiltered, no fleet means the node
// decides alone (local ETRN, static policy only). The dependencies must
// outlive the Checks. Thread-safe (Decide runs on worker threads).
#ifndef ZM_SMTPSERVER_SMTPSERVER_CHECKS_H_
#define ZM_SMTPSERVER_SMTPSERVER_CHECKS_H_

#include <memory>

#include "node/common/node_dir.h"
#include "node/smtp/check.h"
#include "node/smtpserver/smtpserver_settings.h"

namespace zm {
class Logger;
namespace ratetrack {
class RateTracker;
}
namespace dns {
class Resolver;
}
}  // namespace zm

namespace zm::smtpserver {

class Authenticator;  // smtpserver_auth.h
class ContentFilter;  // smtpserver_filter.h
class MailAuth;       // smtpserver_mailauth.h
class FleetLink;      // smtpserver_fleet.h
struct SmtpMetrics;   // smtpserver_metrics.h

struct CheckDeps {
  const NodeDir* node = nullptr;
  Logger* log = nullptr;
  ratetrack::RateTracker* rates = nullptr;
  Authenticator* auth = nullptr;
  dns::Resolver* dns = nullptr;
  ContentFilter* filter = nullptr;
  MailAuth* mailauth = nullptr;  // SPF/DKIM/DMARC, DKIM signing; null = off
  // The fleet (a node with cluster.conf): its policy overlay comes before
  // the static policy, ETRN is cluster-wide, over-limit sources may be
  // published. Null: this node alone.
  FleetLink* fleet = nullptr;
  // Exported counters of refusals (policy, rate limit); null = none.
  const SmtpMetrics* metrics = nullptr;
};

// The smtpserver's Checks, with what its driver shares with them.
class SessionChecks : public smtp::Checks {
 public:
  // The client address's smtp-policy attributes, as the driver looked
  // them up (once per session) before the session's kConnect check: the
  // checks use them instead of a lookup of their own.
  virtual void SetClientAttrs(const smtp::Session& session,
                              std::shared_ptr<const PolicyAttrs> attrs) = 0;
  // The session is over: what the checks kept about it goes.
  virtual void Forget(const smtp::Session& session) = 0;
};

std::unique_ptr<SessionChecks> MakePolicyChecks(
    std::shared_ptr<const Settings> settings, CheckDeps deps);

}  // namespace zm::smtpserver

#endif  // ZM_SMTPSERVER_SMTPSERVER_CHECKS_H_
