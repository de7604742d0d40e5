// zm::smtp replies: the one table that maps what went wrong (or right) to
// an SMTP reply code, an RFC 3463 enhanced status code and a default text.
//
// Every reply the session sends comes from here, so the codes stay
// "valid at the place" (RFC 5321 section 4.3.2) and consistent:
//
//   Reply r = MakeReply(ReplyId::kRelayDenied);       // 554 5.7.1 ...
//   Reply r = MakeReply(ReplyId::kSyntaxParam, "bad SIZE value");
//   std::string wire = r.Format(/*enhanced=*/true);  // "554 5.7.1 ...\r\n"
//
// I/O-free; everything here is thread-compatible value code.
#ifndef ZM_SMTP_REPLY_H_
#define ZM_SMTP_REPLY_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace zm::smtp {

enum class ReplyId {
  kOk,                  // 250 2.0.0
  kSenderOk,            // 250 2.1.0
  kRecipientOk,         // 250 2.1.5
  kQueued,              // 250 2.0.0 Ok: queued as QID
  kStartData,           // 354
  kBye,                 // 221 2.0.0
  kHelp,                // 214 2.0.0
  kShuttingDown,        // 421 4.3.2
  kTooManyConnections,  // 421 4.7.0
  kIdleTimeout,         // 421 4.4.2
  kTooManyErrors,       // 421 4.7.0
  kLineTooLong,         // 500 5.5.2
  kUnknownCommand,      // 500 5.5.1
  kEmptyCommand,        // 500 5.5.2
  kDisabledCommand,     // 502 5.5.1
  kBadSequence,         // 503 5.5.1
  kSyntax,              // 501 5.5.4
  kSyntaxParam,       // 555 5.5.4 (unknown or unsupported MAIL/RCPT parameter)
  kBadSenderAddress,  // 501 5.1.7
  kBadRecipientAddress,  // 501 5.1.3
  kNeedSmtpUtf8,         // 553 5.6.7
  kTooManyRecipients,    // 452 4.5.3
  kRelayDenied,          // 554 5.7.1
  kMessageTooBig,        // 552 5.3.4
  kHeaderTooBig,         // 552 5.3.4
  kSpoolError,           // 451 4.3.0
  kDiskFull,             // 452 4.3.1
  kStartTls,             // 220 2.0.0 Ready to start TLS
  kTlsUnavailable,       // 454 4.7.0
  kAuthOk,               // 235 2.7.0
  kAuthFailed,           // 535 5.7.8
  kAuthRequired,         // 530 5.7.0
  kAuthCancelled,        // 501 5.0.0
  kAuthBadBase64,        // 501 5.5.2
  kEncryptionRequired,   // 538 5.7.11
  kUnknownMechanism,     // 504 5.5.4
  kBareNewline,          // 550 5.6.0
  kConnectRefused,       // 554 5.7.1
  kCannotVerify,         // 252 2.1.5
  kEtrnStarted,          // 250 2.0.0
  kChunkOk,              // 250 2.0.0 n octets received
};

struct Reply {
  int code = 250;
  std::string enhanced;            // "2.0.0"; empty for 220/354/EHLO lines
  std::vector<std::string> lines;  // at least one

  // Renders "code[-| ]enhanced text\r\n" for every line; `enhanced` false
  // leaves the enhanced status out (NoENHANCEDSTATUSCODES).
  std::string Format(bool enhanced) const;
  // The first line as it would be logged: "554 5.7.1 relaying denied".
  std::string Summary() const;
};

// The reply for `id` with its default text, or with `text` instead.
Reply MakeReply(ReplyId id, std::string_view text = {});

// What a failed spool operation tells the client: ResourceExhausted (disk
// full) -> 452 4.3.1, anything else -> 451 4.3.0. The status text is not
// shown to the client (it names local paths); it goes to the log.
Reply ReplyForSpoolError(const absl::Status& status);

}  // namespace zm::smtp

#endif  // ZM_SMTP_REPLY_H_
