// sendmail -q: ask the scheduler for a queue run over its admin service
// (gRPC, run/scheduler.sock).
// The scheduler does the work; sendmail only asks and reports the answer.
#include <sysexits.h>

#include "node/admin/admin_grpc_client.h"
#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/sendmail/sendmail_internal.h"

namespace zm::sendmail {

int RunQueue(const NodeDir& node, const Options& opts, int out_fd, int err_fd) {
  // What the text protocol called the request, for the messages.
  std::string what = "RUNQ";
  if (!opts.queue_site.empty()) {
    what = StrCat("ETRN ", opts.queue_site);
  } else if (!opts.queue_id.empty()) {
    what = StrCat("RUNQ ID ", opts.queue_id);
  }
  for (char c : what) {
    if (static_cast<unsigned char>(c) < ' ') {
      Say(err_fd, "sendmail", "control character in -q argument");
      return EX_USAGE;
    }
  }
  auto client = admin::GrpcAdminClient::Connect(node);
  if (!client.ok()) {
    Say(err_fd, "sendmail",
        StrCat("cannot reach the scheduler: ", Message(client.status())));
    return absl::IsPermissionDenied(client.status()) ||
                   absl::IsUnauthenticated(client.status())
               ? EX_NOPERM
               : EX_UNAVAILABLE;
  }
  absl::StatusOr<admin::pb::ActionReply> reply =
      !opts.queue_site.empty() ? (*client)->Etrn(opts.queue_site)
                               : (*client)->RunQueue(opts.queue_id);
  if (!reply.ok()) {
    Say(err_fd, "sendmail", StrCat(what, ": ", Message(reply.status())));
    if (absl::IsPermissionDenied(reply.status()) ||
        absl::IsUnauthenticated(reply.status())) {
      return EX_NOPERM;
    }
    // The scheduler answers NOT_FOUND for an id it does not hold.
    if (!opts.queue_id.empty() && absl::IsNotFound(reply.status())) {
      return EX_NOINPUT;
    }
    return EX_UNAVAILABLE;
  }
  (void)fs::WriteAll(out_fd, StrCat(reply->text(), "\n"), "stdout");
  return EX_OK;
}

}  // namespace zm::sendmail
