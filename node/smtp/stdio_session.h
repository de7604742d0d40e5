// zm::smtp::RunStdioSession: one SMTP session over a pair of file
// descriptors, for `sendmail -bs` (and tests).
//
// The session uses the same engine (zm::smtp::Session) and the same spool
// submission as the smtpserver: the message is in spool/router/ before the
// client sees "250 2.0.0 Ok: queued as QID". The client is a trusted local
// user: it may relay, the envelope records local_user and protocol "SMTP"
// or "ESMTP" with no client address, and the Received: header says "from
// local user NAME". Configuration comes from the node's etc/smtpserver.conf
// (limits) and etc/mail.conf (our host name), as for the daemon.
#ifndef ZM_SMTP_STDIO_SESSION_H_
#define ZM_SMTP_STDIO_SESSION_H_

#include <string_view>

#include "node/common/log.h"
#include "node/common/node_dir.h"

namespace zm::smtp {

// Runs one SMTP session on file descriptors in/out (sendmail -bs): same
// engine and same spool submission as the smtpserver, as a trusted local
// client. Returns a sysexits code: EX_OK (0) when the session ended with
// QUIT or end of input, EX_CONFIG (78) if the node's configuration is
// unusable, EX_IOERR (74) on an I/O error on in_fd/out_fd.
int RunStdioSession(const NodeDir& node, Logger& log,
                    std::string_view local_user, int in_fd, int out_fd);

}  // namespace zm::smtp

#endif  // ZM_SMTP_STDIO_SESSION_H_
