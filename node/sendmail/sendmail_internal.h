// Internal to node/sendmail: the modes of sendmail, one concern per file.
#ifndef ZM_SENDMAIL_SENDMAIL_INTERNAL_H_
#define ZM_SENDMAIL_SENDMAIL_INTERNAL_H_

#include <string>
#include <string_view>
#include <vector>

#include "node/common/node_dir.h"
#include "node/sendmail/sendmail.h"

namespace zm::sendmail {

// Writes "program: text\n" to fd.
void Say(int fd, std::string_view program, std::string_view text);

// Replaces the process with the node's program `name` (ZMAILER_HOME set to
// the node). Returns only on failure (EX_UNAVAILABLE, reason on err_fd).
int ExecProgram(const NodeDir& node, std::string_view name,
                const std::vector<std::string>& args, int err_fd);

// -q, -qR site, -qI id (sendmail_queue.cc).
int RunQueue(const NodeDir& node, const Options& opts, int out_fd, int err_fd);

// -bv (sendmail_verify.cc).
int Verify(const NodeDir& node, const std::vector<std::string>& args,
           int out_fd, int err_fd);

// -bs (sendmail_smtp.cc).
int SmtpSession(const NodeDir& node, int in_fd, int out_fd, int err_fd);

}  // namespace zm::sendmail

#endif  // ZM_SENDMAIL_SENDMAIL_INTERNAL_H_
