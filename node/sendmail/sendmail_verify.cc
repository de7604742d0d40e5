// sendmail -bv: route each recipient as the router would, print where it
// would go, send nothing.
#include <sysexits.h>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/router/routing.h"
#include "node/sendmail/sendmail_internal.h"
#include "node/sendmail/submit.h"

namespace zm::sendmail {

int Verify(const NodeDir& node, const std::vector<std::string>& args,
           int out_fd, int err_fd) {
  if (args.empty()) {
    Say(err_fd, "sendmail", "-bv needs the addresses to verify");
    return EX_USAGE;
  }
  auto addrs = submit::ParseRecipientArgs(args);
  if (!addrs.ok()) {
    Say(err_fd, "sendmail", Message(addrs.status()));
    return EX_USAGE;
  }
  if (auto s = RequireNode(node); !s.ok()) {
    Say(err_fd, "sendmail", Message(s));
    return EX_CONFIG;
  }
  auto routing = router::Routing::Open(node);
  if (!routing.ok()) {
    Say(err_fd, "sendmail", Message(routing.status()));
    return EX_CONFIG;
  }
  bool all_ok = true;
  std::string out;
  for (const auto& a : *addrs) {
    for (const router::Route& r : (*routing)->RouteAddress(a)) {
      if (r.channel == "error") {
        all_ok = false;
        StrAppend(&out, a,
                  "... undeliverable: ", r.diag.empty() ? r.host : r.diag,
                  "\n");
      } else {
        StrAppend(&out, a, "... deliverable: channel=", r.channel,
                  " host=", r.host, " user=", r.user, "\n");
      }
    }
  }
  (void)fs::WriteAll(out_fd, out, "stdout");
  return all_ok ? EX_OK : EX_NOUSER;
}

}  // namespace zm::sendmail
