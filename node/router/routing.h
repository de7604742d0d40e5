// zm::router::Routing: where each envelope recipient goes.
//
// The routing logic as a library, shared by the router daemon and by
// `sendmail -bv` (address verification). Given an envelope recipient it
// answers the transport control file's (channel, host, user) triples:
//
//   auto r = zm::router::Routing::Open(node);
//   if (!r.ok()) return r.status();          // names `zmailer newdb`
//   for (const zm::router::Route& rt : (*r)->RouteAddress("root")) {
//     // rt.channel "local", rt.host "root", rt.user "root"
//   }
//
// Routing order (docs/router.md): fqdnaliases; own domains (mail.conf
// hostname, mydomain, localhost, [127.0.0.1], [IPv6:::1], the thishost /
// localnames relation) -> aliases (recursive, depth limit, loop detection,
// :include: files, owner-LIST) -> userdb -> local user (getpwnam() or a
// mailbox under mail/), with its .forward when router.conf says so ->
// error/nouser. Other domains -> the routes relation (suffix matches),
// else smtp/<domain> after a DNS check (null MX and NXDOMAIN bounce, a
// temporary DNS failure goes to the `hold` channel, host `dns:<domain>`).
//
// `zmailer route ADDRESS` prints the decision with the chain of relations
// that produced it: RouteAddress(address, &trace).
//
// Thread-safety: RouteAddress() may be called from many threads at once.
// ReloadIfChanged() may run concurrently with RouteAddress(): databases
// are swapped under a lock, and calls in flight finish on the old ones.
#ifndef ZM_ROUTER_ROUTING_H_
#define ZM_ROUTER_ROUTING_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "node/common/node_dir.h"
#include "node/dns/resolver.h"
#include "node/metrics/metrics.h"

namespace zm::router {

// One destination of a recipient, as written into a control file `r` line.
struct Route {
  std::string channel;  // "local", "smtp", "error", ...
  std::string host;     // user name, "pipe", "file", a domain, "nouser"
  std::string user;     // user name, "|command", "/path", an address
  std::string diag;     // error channel text ("user unknown", "alias loop")
  // Non-empty: the envelope sender for this route (the owner of the list
  // it came from, `owner-LIST`), so that bounces go to the owner.
  std::string sender;

  bool operator==(const Route&) const = default;
};

struct RoutingOptions {
  // Used for the remote-domain check when it is on (router.conf
  // dns-check); null: Open() makes one from etc/resolver.conf.
  dns::Resolver* resolver = nullptr;
  // Counts DNS lookups and failures (zmnode_dns_*_total); null: none.
  metrics::Registry* metrics = nullptr;
};

class Routing {
 public:
  // Opens mail.conf, and the compiled relations (read-only) named in
  // etc/dbases.conf. FailedPrecondition naming `zmailer newdb` if a
  // database listed there (aliases, localnames) was never compiled;
  // InvalidArgument "file:line: what" for bad configuration.
  static absl::StatusOr<std::unique_ptr<Routing>> Open(
      const NodeDir& node, const RoutingOptions& options = {});

  virtual ~Routing() = default;

  // Routes one envelope recipient; alias expansion may give many routes,
  // never none (failures become routes on the `error` channel). `address`
  // is as given by the sender (no angle brackets): it may never name a
  // |command or /file itself; only aliases may (they are trusted).
  std::vector<Route> RouteAddress(std::string_view address) {
    return RouteAddress(address, nullptr);
  }
  // The same; appends to *trace one line per step taken (relation lookups
  // and their answers, DNS answers), for `zmailer route`.
  virtual std::vector<Route> RouteAddress(std::string_view address,
                                          std::vector<std::string>* trace) = 0;

  // Re-opens databases that `zmailer newdb` swapped since the last call,
  // for relations with the -m flag in dbases.conf (cheap when nothing
  // changed: one readlink per relation). Errors leave the old ones in use.
  [[nodiscard]] virtual absl::Status ReloadIfChanged() = 0;

 protected:
  Routing() = default;
};

}  // namespace zm::router

#endif  // ZM_ROUTER_ROUTING_H_
