// zm::submit: the header section of a submitted message.
//
// sendmail reads the top of its input, finds the header fields (to take
// recipients from them under -t, to drop Bcc:, to see which of Date:,
// From:, Message-ID: it must add), and copies everything after them as the
// body unchanged:
//
//   auto hb = zm::submit::ParseHeaderBlock(text, /*at_eof=*/true, {});
//   auto rcpts = zm::submit::HeaderRecipients(*hb);   // for -t
//   if (!hb->Has("Date")) ...
//
// The header section ends at the first empty line (which belongs to it) or
// at the first line that is neither a field ("Name: value") nor a folded
// continuation of one (that line starts the body). Input has LF line
// endings (CRLF was already turned into LF). I/O-free, thread-compatible.
#ifndef ZM_SENDMAIL_HEADER_BLOCK_H_
#define ZM_SENDMAIL_HEADER_BLOCK_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace zm::submit {

struct HeaderField {
  std::string name;   // as written, without the colon
  std::string value;  // unfolded: line breaks removed, white space kept
  std::string raw;    // the field as written, folds and final LF included
};

struct HeaderLimits {
  size_t max_header_bytes = 1024 * 1024;  // the whole header section
  size_t max_field_bytes = 64 * 1024;     // one field, folds included
  size_t max_fields = 2000;
};

struct HeaderBlock {
  std::vector<HeaderField> fields;
  size_t end = 0;           // offset of the first body byte in the text
  bool blank_line = false;  // the section ended with an empty line

  // True if a field named `name` (any case) is present.
  bool Has(std::string_view name) const;
};

// Parses the header section at the start of `text`. `at_eof` says `text`
// holds the whole rest of the input; when it does not, a section still
// open at the end of `text` is too large. InvalidArgument naming the
// problem ("header section larger than 1048576 bytes").
absl::StatusOr<HeaderBlock> ParseHeaderBlock(std::string_view text, bool at_eof,
                                             const HeaderLimits& limits);

// The recipients for `sendmail -t`: the addresses of To:, Cc: and Bcc:, or
// of Resent-To:, Resent-Cc: and Resent-Bcc: when any of those is present
// (a resent message goes to its new recipients only). In field order.
// InvalidArgument "Cc: header: <reason>" for a field that does not parse.
absl::StatusOr<std::vector<std::string>> HeaderRecipients(
    const HeaderBlock& block);

// True for the fields that must not reach the recipients (Bcc:,
// Resent-Bcc:).
bool IsBlindField(std::string_view name);

}  // namespace zm::submit

#endif  // ZM_SENDMAIL_HEADER_BLOCK_H_
