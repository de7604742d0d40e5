// zm::admin::AdminClient: talks to the scheduler's admin socket (the
// MAILQv2 protocol, docs/admin-protocol.md). Used by mailq and sendmail
// (ETRN, RUNQ).
//
//   auto c = zm::admin::AdminClient::Connect(node);
//   if (!c.ok()) ...;                       // Unavailable: scheduler down
//   auto lines = (*c)->Command("SHOW QUEUE THREADS");
//
// Not thread-safe; one client per thread.
#ifndef ZM_ADMIN_ADMIN_CLIENT_H_
#define ZM_ADMIN_ADMIN_CLIENT_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "node/common/fs.h"
#include "node/common/node_dir.h"

namespace zm::admin {

// The admin socket named by PARAMmailsock in etc/scheduler.conf, or the
// default "UNIX:<node>/run/mailq.sock".
std::string MailSockSpec(const NodeDir& node);

class AdminClient {
 public:
  // Connects to the scheduler's admin socket named by scheduler.conf
  // (PARAMmailsock, default UNIX:$MAILHOME/run/mailq.sock) and logs in
  // (MAILQv2 challenge/response). Unavailable if the scheduler is down;
  // PermissionDenied if the login is refused.
  static absl::StatusOr<std::unique_ptr<AdminClient>> Connect(
      const NodeDir& node, std::string user = "nobody",
      std::string password = "nobody");

  // Same, to an explicit socket spec ("UNIX:/path" or "TCP:port" /
  // "TCP:host:port").
  static absl::StatusOr<std::unique_ptr<AdminClient>> ConnectTo(
      std::string_view socket_spec, std::string user, std::string password);

  ~AdminClient();

  // One command; the reply's lines (without the final "."), or an error
  // carrying the server's "-" text.
  absl::StatusOr<std::vector<std::string>> Command(std::string_view line);

  // WATCH EVENTS: after this, NextEvent() returns one delivery event per
  // call ("QID: to=<...>, ... status=sent (...)", "QID: removed", ...).
  absl::Status WatchEvents();
  absl::StatusOr<std::string> NextEvent();

 private:
  explicit AdminClient(fs::UniqueFd fd) : fd_(std::move(fd)) {}
  absl::StatusOr<std::string> ReadLine();
  // The reply's first line: OK for "+ ...", the "-" text as
  // FailedPrecondition otherwise.
  absl::Status ReadStatusLine();

  fs::UniqueFd fd_;
  std::string buffer_;
};

}  // namespace zm::admin

#endif  // ZM_ADMIN_ADMIN_CLIENT_H_
