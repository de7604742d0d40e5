// The message file: envelope, then the RFC 5322 message, written once by
// the submitter (sendmail, rmail, smtpserver, the scheduler's DSNs) and
// never modified afterwards. Format (docs/spool.md has the full story):
//
//   zmnode-message 1
//   id 0GC4H8WY3TQ2K7PX-mx1
//   arrival 1763680000.123456
//   from alice@example.org          (empty value: the null sender <>)
//   to bob@example.net notify=SUCCESS,FAILURE orcpt=rfc822;bob@example.net
//   ...other keywords...
//   size 0000000000001234           (bytes of the message after env-end)
//   env-end
//   Received: ...
//   (the message, LF line endings, no dot-stuffing)
//
// Each line is `keyword value...`; values are xtext-encoded tokens, so a
// line splits on spaces. The size is fixed-width so a streaming writer can
// fill it in just before the file is synced; a reader compares it with the
// file's length and so detects a truncated file.
#ifndef ZM_MAIL_ENVELOPE_H_
#define ZM_MAIL_ENVELOPE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace zm::mail {

struct EnvelopeRecipient {
  std::string address;  // as given, without angle brackets
  std::string notify;   // DSN NOTIFY: "" (not given), "NEVER", or a list
  std::string orcpt;    // DSN ORCPT, decoded: "rfc822;user@example"
};

struct Envelope {
  std::string queue_id;
  int64_t arrival_usec = 0;  // since the epoch
  std::string sender;        // "" is the null sender
  std::vector<EnvelopeRecipient> recipients;
  std::string envid;      // DSN ENVID, decoded
  std::string ret;        // DSN RET: "", "FULL" or "HDRS"
  std::string deliverby;  // RFC 2852 BY parameter, as given
  std::string bodytype;   // "", "7BIT", "8BITMIME", "BINARYMIME"
  bool smtputf8 = false;
  std::string protocol;     // "ESMTP", "ESMTPS", "ESMTPA", "SMTP", "local"
  std::string client_addr;  // peer IP address; "" for local submission
  std::string client_port;
  std::string client_name;  // reverse DNS name, if known
  std::string helo;
  std::string auth_user;   // SMTP AUTH identity
  std::string ident;       // RFC 1413 USERID of the client ("identinfo")
  std::string tls;         // e.g. "TLSv1.3:TLS_AES_256_GCM_SHA384"
  std::string local_user;  // submitting login (sendmail, rmail)
  uint64_t size = 0;       // bytes of the message after env-end
};

// Renders the envelope part (through "env-end\n"). `size_offset`, if not
// null, receives the offset of the size digits within the result, so a
// streaming writer can PatchSize() once it knows the length.
std::string SerializeEnvelope(const Envelope& env, size_t* size_offset);

// Width of the size field and its rendering.
inline constexpr size_t kSizeDigits = 16;
std::string FormatSizeField(uint64_t size);

struct MessageFile {
  Envelope envelope;
  size_t body_offset = 0;  // where the RFC 5322 message starts
};

// Parses the envelope of a whole message file. DataLoss if the file is
// truncated (its length disagrees with `size`, or env-end is missing);
// InvalidArgument, naming the line, for anything malformed.
absl::StatusOr<MessageFile> ParseMessageFile(std::string_view file);

}  // namespace zm::mail

#endif  // ZM_MAIL_ENVELOPE_H_
