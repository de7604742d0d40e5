// rmail: UUCP's mail entry point. The sender comes from the "From " lines
// at the top of the message; everything else is sendmail's submission.
#include <sysexits.h>

#include "node/common/log.h"
#include "node/common/strings.h"
#include "node/sendmail/sendmail.h"
#include "node/sendmail/sendmail_internal.h"
#include "node/sendmail/submit.h"

namespace zm::sendmail {

int RunRmail(const RmailOptions& options, int in_fd, int err_fd) {
  if (options.recipients.empty()) {
    Say(err_fd, "rmail", "no recipients given");
    return EX_USAGE;
  }
  NodeDir node = LocateNode(options.node_dir);
  auto ctx = submit::LoadContext(node);
  if (!ctx.ok()) {
    Say(err_fd, "rmail", Message(ctx.status()));
    return submit::SysexitFor(ctx.status());
  }
  submit::SubmitRequest req;
  req.recipients = options.recipients;
  req.dot_terminates = false;  // UUCP carries the message as is
  req.uucp_from = true;
  req.protocol = "UUCP";
  Logger log("rmail", node.maillog(), /*to_stderr=*/false);
  auto done = submit::Submit(*ctx, req, in_fd, log);
  if (!done.ok()) {
    Say(err_fd, "rmail", Message(done.status()));
    return submit::SysexitFor(done.status());
  }
  return EX_OK;
}

}  // namespace zm::sendmail
