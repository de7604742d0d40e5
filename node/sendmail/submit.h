// zm::submit: local message submission, shared by sendmail and rmail.
//
// Reads a message from a file descriptor, builds its envelope, adds the
// header fields a local submission must carry, and hands it durably to the
// router through the spool (zm::spool::Spool Begin/Append/Commit):
//
//   zm::submit::SubmitRequest req;
//   req.recipients = {"root"};
//   req.dot_terminates = false;                       // -i
//   auto ctx = zm::submit::LoadContext(node);         // mail.conf, node tag
//   auto done = zm::submit::Submit(*ctx, req, /*in_fd=*/0, log);
//   if (!done.ok()) return zm::submit::SysexitFor(done.status());
//   // done->queue_id is in spool/router/ for good: exit 0
//
// What is added (only when missing, except Received:):
//   Received: by HOST (zmnode, from userid UID)
//           id QID; DATE
//   From: Full Name <sender>   (the -f sender, else login@mydomain)
//   Date: RFC 5322 date
//   Message-ID: <QID@HOST>
// Bcc: and Resent-Bcc: are removed. A header section not ended by an empty
// line gets one, so the body never runs into the header.
//
// Errors carry the sendmail exit code (sysexits.h) to use, read with
// SysexitFor(): EX_USAGE for no recipients or a bad recipient argument,
// EX_DATAERR for a message that cannot be parsed or is too large,
// EX_TEMPFAIL when the spool cannot take it (disk full, permissions, I/O),
// EX_IOERR when reading the input fails, EX_CONFIG for a missing or bad
// node configuration. Thread-compatible; one Submit() at a time per request.
#ifndef ZM_SENDMAIL_SUBMIT_H_
#define ZM_SENDMAIL_SUBMIT_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "node/common/log.h"
#include "node/common/node_dir.h"
#include "node/sendmail/header_block.h"

namespace zm::submit {

// Attaches the exit code a submitting program should end with.
absl::Status WithSysexit(absl::Status status, int sysexit);
// The code attached by WithSysexit(); EX_SOFTWARE for OK-less statuses
// that carry none, 0 for OK.
int SysexitFor(const absl::Status& status);

struct SubmitLimits {
  // Bytes of the stored message (added headers included).
  uint64_t max_message_bytes = 256ull * 1024 * 1024;
  size_t max_recipients = 10000;
  HeaderLimits headers;
};

struct SubmitRequest {
  // Envelope sender. Used when sender_given; "" is the null sender <>.
  std::string sender;
  bool sender_given = false;
  std::string full_name;                // -F, for a generated From:
  std::vector<std::string> recipients;  // arguments; each may be a list
  bool extract_recipients = false;      // -t: add To/Cc/Bcc recipients
  bool dot_terminates = true;           // false with -i / -oi
  bool uucp_from = false;               // rmail: sender from From lines
  std::string notify;  // DSN NOTIFY for every recipient ("" = not given)
  std::string ret;     // "", "FULL", "HDRS"
  std::string envid;
  std::string bodytype;  // "", "7BIT", "8BITMIME"
  std::string protocol = "local";
  SubmitLimits limits;
};

// Who submits, and the node's names and spool. LoadContext() fills it
// from the node and the calling user; tests may build one by hand.
struct SubmitContext {
  NodeDir node;
  std::string hostname;  // mail.conf hostname (Received:, Message-ID:)
  std::string mydomain;  // qualifies the login for the default sender
  std::string node_tag;  // goes into queue ids
  uid_t uid = 0;
  std::string login;       // from getpwuid(getuid())
  std::string gecos_name;  // full name from the password file, may be ""
};

// EX_CONFIG if the node or its mail.conf/cluster.conf cannot be read.
absl::StatusOr<SubmitContext> LoadContext(const NodeDir& node);

struct SubmitResult {
  std::string queue_id;
  std::string sender;
  std::vector<std::string> recipients;
  uint64_t size = 0;
};

// Reads the message from `in_fd` to its end (or the "." line), and commits
// it to spool/router/. Returns only after Commit() succeeded. Logs
// "QID: uid=N from=<sender>" to `log`.
absl::StatusOr<SubmitResult> Submit(const SubmitContext& ctx,
                                    const SubmitRequest& request, int in_fd,
                                    Logger& log);

// Validates and normalizes DSN NOTIFY ("never" or a comma list of success,
// failure, delay; any case) to upper case. InvalidArgument otherwise.
absl::StatusOr<std::string> NormalizeNotify(std::string_view value);

// Splits recipient arguments (each an address list) into addresses.
// InvalidArgument naming the argument that does not parse.
absl::StatusOr<std::vector<std::string>> ParseRecipientArgs(
    const std::vector<std::string>& args);

}  // namespace zm::submit

#endif  // ZM_SENDMAIL_SUBMIT_H_
