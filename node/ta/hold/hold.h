// hold: the transport agent of the `hold` channel.
//
// The router sends a recipient to `hold` when it cannot route it now and
// records why in the host field, `kind:argument` (docs/router.md). Each
// kind is an entry of the agent's table (Kinds): a check of the argument
// that says whether the condition still holds, and how a released message
// leaves. Today's kinds:
//
//   dns:DOMAIN     a temporary DNS failure looking up DOMAIN (main.cc:
//                  asks the resolver again)
//   owner:ADDRESS  a list whose owner differs from the rest of the
//                  message's (BuiltinKinds(): cleared at once, ADDRESS
//                  becomes the envelope sender)
//
// For each recipient the agent runs its kind's check:
//
//   still there (DNS: SERVFAIL, timeout)   -> deferred 4.4.3, "still held: ..."
//   cleared (any answer, NXDOMAIN too)     -> the message goes back to the
//       router as a new submission (spool router/, durable) for this
//       recipient, with the original sender (or the kind's), NOTIFY,
//       ORCPT, ENVID and RET; result ok 2.0.0 relay=router
//       "<kind:arg> cleared; released to the router as NEWID" (or the
//       kind's own words)
//   unknown kind, or no way to check       -> deferred 4.3.0 with the reason
//
// The scheduler retries deferred recipients per scheduler.conf (hold/*)
// and bounces them at expiry; it sends no success DSN for a release (the
// new message's delivery reports).
//
//   Kinds kinds = BuiltinKinds();
//   kinds["dns"] = [&](std::string_view domain) -> absl::StatusOr<Release> {
//     ...; return Release{};                // or UnavailableError(...)
//   };
//   HoldAgent agent(node, node_tag, std::move(kinds));
//   zm::ta::RunAgent(node, agent, log, 0, 1);
#ifndef ZM_TA_HOLD_HOLD_H_
#define ZM_TA_HOLD_HOLD_H_

#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "node/common/node_dir.h"
#include "node/spool/spool.h"
#include "node/ta/common/ta.h"

namespace zm::hold {

// How a cleared condition releases the message.
struct Release {
  std::string sender;  // the new envelope sender; "" keeps the original
  // The result text is `said` " as NEWID" `after`; `said` "" = "<kind:arg>
  // cleared; released to the router".
  std::string said, after;
};

// One kind's check of its argument: a Release if the condition cleared,
// Unavailable if it still holds, anything else if it cannot be checked
// (the message says why).
using KindCheck = std::function<absl::StatusOr<Release>(std::string_view arg)>;
using Kinds = std::map<std::string, KindCheck, std::less<>>;

// The kinds that need nothing from outside: `owner`.
Kinds BuiltinKinds();

class HoldAgent : public ta::Handler {
 public:
  HoldAgent(const NodeDir& node, std::string node_tag, Kinds kinds)
      : spool_(node.spool(), std::move(node_tag)), kinds_(std::move(kinds)) {}
  ta::Result Deliver(const ta::Delivery& d) override;

 private:
  spool::Spool spool_;
  Kinds kinds_;
};

}  // namespace zm::hold

#endif  // ZM_TA_HOLD_HOLD_H_
