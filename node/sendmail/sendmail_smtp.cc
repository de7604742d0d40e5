// sendmail -bs: an SMTP session on stdin/stdout, run by the smtpserver's
// engine as a trusted local client.
#include <sysexits.h>

#include "node/common/log.h"
#include "node/common/strings.h"
#include "node/sendmail/sendmail_internal.h"
#include "node/sendmail/submit.h"
#include "node/smtp/stdio_session.h"

namespace zm::sendmail {

int SmtpSession(const NodeDir& node, int in_fd, int out_fd, int err_fd) {
  auto ctx = submit::LoadContext(node);
  if (!ctx.ok()) {
    Say(err_fd, "sendmail", Message(ctx.status()));
    return submit::SysexitFor(ctx.status());
  }
  Logger log("sendmail", node.maillog(), /*to_stderr=*/false);
  return smtp::RunStdioSession(node, log, ctx->login, in_fd, out_fd);
}

}  // namespace zm::sendmail
