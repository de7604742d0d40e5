// Internal: the header fields and body of a spool message (LF endings), as
// the DKIM library and the From: lookup need them.
#ifndef ZM_MAILAUTH_MESSAGE_H_
#define ZM_MAILAUTH_MESSAGE_H_

#include <string>
#include <string_view>
#include <vector>

namespace zm::mailauth::internal {

struct HeaderField {
  std::string_view name;  // as written, without the colon
  std::string_view raw;   // the whole field with its continuation lines,
                          // without the final newline
};

struct ParsedMessage {
  std::vector<HeaderField> headers;
  std::string_view body;  // after the empty line ("" when none)
};

// Splits at the first empty line. Lines without a colon in the header
// block end it (the rest is body), as a lenient reader would.
ParsedMessage ParseMessage(std::string_view message);

// `text` with every LF that is not preceded by CR made CRLF.
std::string ToCrlf(std::string_view text);

// The value of a field (after the colon), unfolded, trimmed.
std::string FieldValue(const HeaderField& f);

}  // namespace zm::mailauth::internal

#endif  // ZM_MAILAUTH_MESSAGE_H_
