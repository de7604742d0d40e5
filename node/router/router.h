// The router daemon: takes complete messages from spool/router/, routes
// every recipient (zm::router::Routing), writes the transport control file
// and moves the message on to queue/ (docs/router.md).
//
//   router [-C DIR] [-f] [-n WORKERS]
//
// Work is done in batches that share one flush:
//   1. per message: parse router/<id>, route, write tmp/<id> (no fsync);
//      unreadable files go to postman/ (never deleted);
//   2. spool::SyncFilesData: the batch's control temporaries fdatasync'd
//      together, every one of them durable;
//   3. per message: rename router/<id> -> queue/<id>, then
//      tmp/<id> -> transport/<id> (both refuse to replace); not flushed:
//      a lost rename only means routing the message again.
// A crash anywhere leaves each message in router/ (routed again) or in
// queue/ with or without its control file; RecoverSpool() at start moves a
// queue/<id> that has no transport/<id> back to router/.
#ifndef ZM_ROUTER_ROUTER_H_
#define ZM_ROUTER_ROUTER_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "node/common/log.h"
#include "node/daemon/daemon.h"
#include "node/router/routing.h"
#include "node/spool/spool.h"

namespace zm::router {

struct RouterOptions {
  int workers = 2;          // -n: worker threads (1..64)
  size_t batch_max = 64;    // messages per batch
  int rescan_seconds = 30;  // full scan of router/ besides inotify
};

// Parses the router's own arguments (after the Daemon's -C/-f).
absl::StatusOr<RouterOptions> ParseRouterArgs(
    const std::vector<std::string>& args);

// Start-up recovery: removes abandoned submissions from public/, empties
// tmp/, and moves each queue/<id> without transport/<id> back to router/.
absl::Status RecoverSpool(const spool::Spool& spool, Logger& log);

// Deletes submissions in public/ whose writer died before committing (a
// killed smtpserver or sendmail); run at start and on every periodic rescan.
absl::Status RemoveAbandonedSubmissions(const spool::Spool& spool, Logger& log);

// Routes one batch of router/ names (processed in the order given) through
// the protocol above. Names it could not finish for a transient reason
// (e.g. disk full) are left in router/ and returned in *retry.
absl::Status RouteBatch(const spool::Spool& spool, Routing& routing,
                        Logger& log, const std::vector<std::string>& names,
                        std::vector<std::string>* retry);

// Runs the daemon until SIGTERM; returns the exit code.
int RunRouter(Daemon& daemon, const RouterOptions& options);

}  // namespace zm::router

#endif  // ZM_ROUTER_ROUTER_H_
