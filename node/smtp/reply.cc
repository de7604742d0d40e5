#include "node/smtp/reply.h"

#include <array>

#include "node/common/strings.h"

namespace zm::smtp {
namespace {

struct Entry {
  ReplyId id;
  int code;
  const char* enhanced;
  const char* text;
};

// The table. Texts are short and say what the client can do about it.
constexpr Entry kTable[] = {
    {ReplyId::kOk, 250, "2.0.0", "Ok"},
    {ReplyId::kSenderOk, 250, "2.1.0", "Ok"},
    {ReplyId::kRecipientOk, 250, "2.1.5", "Ok"},
    {ReplyId::kQueued, 250, "2.0.0", "Ok: queued"},
    {ReplyId::kStartData, 354, "", "End data with <CR><LF>.<CR><LF>"},
    {ReplyId::kBye, 221, "2.0.0", "Bye"},
    {ReplyId::kHelp, 214, "2.0.0",
     "Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY EXPN "
     "ETRN "
     "STARTTLS AUTH"},
    {ReplyId::kShuttingDown, 421, "4.3.2",
     "Service shutting down, closing connection"},
    {ReplyId::kTooManyConnections, 421, "4.7.0",
     "Too many connections, try again later"},
    {ReplyId::kIdleTimeout, 421, "4.4.2", "Idle timeout, closing connection"},
    {ReplyId::kTooManyErrors, 421, "4.7.0",
     "Too many errors, closing connection"},
    {ReplyId::kLineTooLong, 500, "5.5.2", "Line too long"},
    {ReplyId::kUnknownCommand, 500, "5.5.1", "Command unrecognized"},
    {ReplyId::kEmptyCommand, 500, "5.5.2", "Empty command"},
    {ReplyId::kDisabledCommand, 502, "5.5.1", "Command not implemented"},
    {ReplyId::kBadSequence, 503, "5.5.1", "Bad sequence of commands"},
    {ReplyId::kSyntax, 501, "5.5.4", "Syntax error in parameters or arguments"},
    {ReplyId::kSyntaxParam, 555, "5.5.4",
     "Parameter not recognized or not implemented"},
    {ReplyId::kBadSenderAddress, 501, "5.1.7", "Bad sender address syntax"},
    {ReplyId::kBadRecipientAddress, 501, "5.1.3",
     "Bad recipient address syntax"},
    {ReplyId::kNeedSmtpUtf8, 553, "5.6.7",
     "Non-ASCII address requires SMTPUTF8"},
    {ReplyId::kTooManyRecipients, 452, "4.5.3", "Too many recipients"},
    {ReplyId::kRelayDenied, 554, "5.7.1", "Relaying denied"},
    {ReplyId::kMessageTooBig, 552, "5.3.4", "Message size exceeds fixed limit"},
    {ReplyId::kHeaderTooBig, 552, "5.3.4", "Message header size exceeds limit"},
    {ReplyId::kSpoolError, 451, "4.3.0",
     "Local error in processing, try again later"},
    {ReplyId::kDiskFull, 452, "4.3.1",
     "Insufficient system storage, try again later"},
    {ReplyId::kStartTls, 220, "2.0.0", "Ready to start TLS"},
    {ReplyId::kTlsUnavailable, 454, "4.7.0",
     "TLS not available due to temporary reason"},
    {ReplyId::kAuthOk, 235, "2.7.0", "Authentication successful"},
    {ReplyId::kAuthFailed, 535, "5.7.8", "Authentication credentials invalid"},
    {ReplyId::kAuthRequired, 530, "5.7.0", "Authentication required"},
    {ReplyId::kAuthCancelled, 501, "5.0.0", "Authentication cancelled"},
    {ReplyId::kAuthBadBase64, 501, "5.5.2", "Bad base64 data"},
    {ReplyId::kEncryptionRequired, 538, "5.7.11",
     "Encryption required for requested authentication mechanism"},
    {ReplyId::kUnknownMechanism, 504, "5.5.4",
     "Unrecognized authentication type"},
    {ReplyId::kBareNewline, 550, "5.6.0",
     "Message contains bare CR or LF (RFC 5321 section 2.3.8)"},
    {ReplyId::kConnectRefused, 554, "5.7.1", "Service refused"},
    {ReplyId::kCannotVerify, 252, "2.1.5",
     "Cannot verify the user; try RCPT to attempt delivery"},
    {ReplyId::kEtrnStarted, 250, "2.0.0", "Queuing started"},
    {ReplyId::kChunkOk, 250, "2.0.0", "Ok"},
};

const Entry& Lookup(ReplyId id) {
  for (const Entry& e : kTable) {
    if (e.id == id) return e;
  }
  return kTable[0];  // unreachable for valid ids; the test checks coverage
}

}  // namespace

std::string Reply::Format(bool with_enhanced) const {
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    StrAppend(&out, code, i + 1 < lines.size() ? "-" : " ");
    if (with_enhanced && !enhanced.empty()) StrAppend(&out, enhanced, " ");
    StrAppend(&out, lines[i], "\r\n");
  }
  if (lines.empty()) StrAppend(&out, code, "\r\n");
  return out;
}

std::string Reply::Summary() const {
  std::string out = StrCat(code);
  if (!enhanced.empty()) StrAppend(&out, " ", enhanced);
  if (!lines.empty()) StrAppend(&out, " ", lines.front());
  return out;
}

Reply MakeReply(ReplyId id, std::string_view text) {
  const Entry& e = Lookup(id);
  Reply r;
  r.code = e.code;
  r.enhanced = e.enhanced;
  r.lines.push_back(text.empty() ? std::string(e.text) : std::string(text));
  return r;
}

Reply ReplyForSpoolError(const absl::Status& status) {
  if (absl::IsResourceExhausted(status)) return MakeReply(ReplyId::kDiskFull);
  return MakeReply(ReplyId::kSpoolError);
}

}  // namespace zm::smtp
