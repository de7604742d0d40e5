// mailbox: the transport agent of the `local` channel.
//
// It delivers each recipient the router gave to `local` (see
// docs/transport-agents.md):
//   host = user name  -> the user's mailbox in the mail store: Maildir if
//                        STORE/<user>/ is a folder, else the mbox file
//                        STORE/<user> (fcntl lock + dotlock, `From ` line,
//                        mboxrd `>From ` quoting)
//   host `pipe`       -> `|command`: /bin/sh -c command, message on stdin
//   host `file`       -> `/path` (mbox style) or `/path/` (Maildir)
// Every stored or piped copy starts with `Return-Path:` and `Delivered-To:`.
//
//   zm::mailbox::Options opts = *zm::mailbox::ParseFlags(node, args);
//   zm::mailbox::MailboxAgent agent(opts, log);
//   zm::ta::RunAgent(node, agent, log, 0, 1);
#ifndef ZM_TA_MAILBOX_MAILBOX_H_
#define ZM_TA_MAILBOX_MAILBOX_H_

#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "node/common/log.h"
#include "node/common/node_dir.h"
#include "node/ta/common/ta.h"

namespace zm::mailbox {

struct Options {
  std::string mail_dir;       // -d DIR: the mail store (default node mail/)
  bool new_maildir = false;   // -M: create new user mailboxes as Maildirs
  bool eight_bit = false;     // -8: accepted; QP->8bit is not done yet
  int pipe_timeout_s = 600;   // -t SECS: run-time bound of a |command
  int lock_timeout_s = 30;    // -l SECS: wait for an mbox lock at most this
  int dotlock_stale_s = 300;  // a dotlock older than this is removed
  // -u USER: who runs |command and writes /file targets when the agent
  // runs as root. Default: the owner of etc/aliases, or `nobody` when root
  // owns it. Ignored when not running as root.
  std::string run_as;
  std::string hostname;  // mail.conf hostname (Delivered-To, Maildir)
};

// Parses the agent's own flags (the common -C DIR is taken by the caller).
// InvalidArgument with a one-line reason on misuse. Reads etc/mail.conf
// when present (a bad line is an error naming file:line).
absl::StatusOr<Options> ParseFlags(const NodeDir& node,
                                   const std::vector<std::string>& args);

class MailboxAgent : public ta::Handler {
 public:
  MailboxAgent(Options opts, const NodeDir& node, Logger& log);
  ta::Result Deliver(const ta::Delivery& d) override;

 private:
  Options opts_;
  NodeDir node_;
  Logger& log_;
};

// --- Formats, public for tests. ---

// `From sender date` (asctime form, UTC) for an mbox; "" sender is
// MAILER-DAEMON.
std::string FromLine(std::string_view sender, std::time_t when);

// Appends `text` to *out with mboxrd quoting: every line that matches
// `>*From ` gets one more '>'. `at_line_start` carries the state between
// calls (start with true).
void AppendQuoted(std::string_view text, bool* at_line_start, std::string* out);

// The lines put in front of the message:
// `Return-Path: <sender>` and `Delivered-To: address`.
std::string TraceHeaders(std::string_view sender,
                         std::string_view delivered_to);

// True if the header block of `message` already has a Delivered-To equal
// (case-insensitively) to `address`: the message is looping.
bool HasDeliveredTo(std::string_view message, std::string_view address);

}  // namespace zm::mailbox

#endif  // ZM_TA_MAILBOX_MAILBOX_H_
