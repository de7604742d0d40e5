// sendmail -q: ask the scheduler for a queue run over its admin socket.
// The scheduler does the work; sendmail only asks and reports the answer.
#include <sysexits.h>

#include "node/admin/admin_client.h"
#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/sendmail/sendmail_internal.h"

namespace zm::sendmail {

int RunQueue(const NodeDir& node, const Options& opts, int out_fd, int err_fd) {
  std::string command = "RUNQ";
  if (!opts.queue_site.empty()) {
    command = StrCat("ETRN ", opts.queue_site);
  } else if (!opts.queue_id.empty()) {
    command = StrCat("RUNQ ID ", opts.queue_id);
  }
  for (char c : command) {
    if (static_cast<unsigned char>(c) < ' ') {
      Say(err_fd, "sendmail", "control character in -q argument");
      return EX_USAGE;
    }
  }
  auto client = admin::AdminClient::Connect(node);
  if (!client.ok()) {
    Say(err_fd, "sendmail",
        StrCat("cannot reach the scheduler: ", Message(client.status())));
    return absl::IsPermissionDenied(client.status()) ? EX_NOPERM
                                                     : EX_UNAVAILABLE;
  }
  auto reply = (*client)->Command(command);
  if (!reply.ok()) {
    Say(err_fd, "sendmail", StrCat(command, ": ", Message(reply.status())));
    if (absl::IsPermissionDenied(reply.status())) return EX_NOPERM;
    // The scheduler refuses ("-" reply) an id it does not hold.
    if (!opts.queue_id.empty() && (absl::IsFailedPrecondition(reply.status()) ||
                                   absl::IsNotFound(reply.status()))) {
      return EX_NOINPUT;
    }
    return EX_UNAVAILABLE;
  }
  std::string text;
  for (const auto& line : *reply) StrAppend(&text, line, "\n");
  (void)fs::WriteAll(out_fd, text, "stdout");
  return EX_OK;
}

}  // namespace zm::sendmail
