// sendmail and rmail: the local submission programs of a node.
//
// `sendmail` takes sendmail(8)'s command line (docs/sendmail.md lists each
// flag and what it does here), reads a message from standard input and
// submits it through zm::submit (node/sendmail/submit.h); its other modes
// hand over to the node's programs: -bp runs `mailq`, -bi runs `zmailer
// newaliases`, -bs speaks SMTP on stdin/stdout (zm::smtp::RunStdioSession),
// -bv routes addresses without sending (zm::router::Routing), -q asks the
// scheduler to run its queue (zm::admin::GrpcAdminClient).
//
//   auto opts = zm::sendmail::ParseArgs({argv, argv + argc});
//   if (!opts.ok()) { print the one-line reason; return EX_USAGE; }
//   return zm::sendmail::Run(*opts, /*in_fd=*/0, /*out_fd=*/1, /*err_fd=*/2);
//
// `rmail` takes UUCP's `rmail [-D domain] [-T] recipient...`: the envelope
// sender comes from the "From " lines at the top of the message.
//
// Every function returns a sysexits.h code; messages for the user go to
// err_fd as one line starting with the program's name.
#ifndef ZM_SENDMAIL_SENDMAIL_H_
#define ZM_SENDMAIL_SENDMAIL_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "node/common/node_dir.h"
#include "node/sendmail/submit.h"

namespace zm::sendmail {

enum class Mode {
  kSubmit,      // -bm (default): read a message, submit it
  kSmtp,        // -bs: an SMTP session on stdin/stdout
  kPrintQueue,  // -bp, or invoked as mailq: run mailq
  kVerify,      // -bv: route the recipients, send nothing
  kNewAliases,  // -bi / -I, or invoked as newaliases
  kRunQueue,    // -q, -qR site, -qI id
};

struct Options {
  Mode mode = Mode::kSubmit;
  std::string node_dir;  // -C DIR; else $ZMAILER_HOME
  submit::SubmitRequest request;
  bool verbose = false;  // -v: follow the message through log/maillog
  int verbose_timeout_ms = 60 * 1000;
  std::string queue_site;               // -qR site: ETRN site
  std::string queue_id;                 // -qI id: RUNQ ID id
  std::vector<std::string> mailq_args;  // what follows -bp
  std::vector<std::string> ignored;     // accepted options without effect
};

// Parses sendmail's arguments (argv[0] included: invoked as "mailq" it is
// -bp, as "newaliases" -bi). Options may be clustered and their values
// attached or separate (-oem, -B8BITMIME, -f user, -N success,failure);
// options and recipients may be mixed; "--" ends the options.
// InvalidArgument with a one-line reason for anything unknown or bad.
absl::StatusOr<Options> ParseArgs(const std::vector<std::string>& argv);

int Run(const Options& options, int in_fd, int out_fd, int err_fd);

struct RmailOptions {
  std::string node_dir;  // -C DIR (a zmnode addition)
  std::vector<std::string> recipients;
};
absl::StatusOr<RmailOptions> ParseRmailArgs(
    const std::vector<std::string>& argv);
int RunRmail(const RmailOptions& options, int in_fd, int err_fd);

// -v: copies the lines of `maillog` from byte `start` on that carry
// `queue_id` to `out_fd`, until the scheduler logs "QID: removed" or a
// status for as many recipients as the router routed (nrcpt=N), or until
// `timeout_ms` passes. True if the message's fate was seen.
bool FollowMessage(const std::string& maillog, uint64_t start,
                   std::string_view queue_id, int timeout_ms, int out_fd);

}  // namespace zm::sendmail

#endif  // ZM_SENDMAIL_SENDMAIL_H_
