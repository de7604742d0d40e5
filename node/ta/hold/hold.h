// hold: the transport agent of the `hold` channel.
//
// The router sends a recipient to `hold` when it cannot route it now and
// records why in the host field, `kind:argument` (docs/router.md). Today's
// kinds are `dns:DOMAIN` (a temporary DNS failure looking up DOMAIN) and
// `owner:ADDRESS` (a list whose owner differs from the rest of the
// message's: released at once, with ADDRESS as the new envelope sender).
// For each recipient the agent checks the condition again:
//
//   still there (DNS: SERVFAIL, timeout)   -> deferred 4.4.3, "still held: ..."
//   cleared (any answer, NXDOMAIN too)     -> the message goes back to the
//       router as a new submission (spool router/, durable) for this
//       recipient, with the original sender, NOTIFY, ORCPT, ENVID and RET;
//       result ok 2.0.0 relay=router "released to the router as NEWID"
//   unknown kind, or no way to check       -> deferred 4.3.0 with the reason
//
// The scheduler retries deferred recipients per scheduler.conf (hold/*)
// and bounces them at expiry; it sends no success DSN for a release (the
// new message's delivery reports).
//
//   HoldAgent agent(node, node_tag, [&](std::string_view kind,
//                                       std::string_view arg) { ... });
//   zm::ta::RunAgent(node, agent, log, 0, 1);
#ifndef ZM_TA_HOLD_HOLD_H_
#define ZM_TA_HOLD_HOLD_H_

#include <functional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "node/common/node_dir.h"
#include "node/spool/spool.h"
#include "node/ta/common/ta.h"

namespace zm::hold {

// Checks a hold condition: OK if it cleared, Unavailable if it still
// holds, anything else if it cannot be checked (the message says why).
using ConditionCheck =
    std::function<absl::Status(std::string_view kind, std::string_view arg)>;

class HoldAgent : public ta::Handler {
 public:
  HoldAgent(const NodeDir& node, std::string node_tag, ConditionCheck check)
      : spool_(node.spool(), std::move(node_tag)), check_(std::move(check)) {}
  ta::Result Deliver(const ta::Delivery& d) override;

 private:
  spool::Spool spool_;
  ConditionCheck check_;
};

}  // namespace zm::hold

#endif  // ZM_TA_HOLD_HOLD_H_
