// xtext (RFC 3461 section 4): how spool and control files carry values that
// may hold spaces, '+' or '=' (addresses with quoted local parts, `|command`
// targets, diagnostics) as single whitespace-free tokens.
#ifndef ZM_MAIL_XTEXT_H_
#define ZM_MAIL_XTEXT_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace zm::mail {

// Every byte outside '!'..'~', and '+' and '=', becomes "+XX".
std::string XtextEncode(std::string_view raw);

// InvalidArgument on a '+' not followed by two upper-case hex digits.
absl::StatusOr<std::string> XtextDecode(std::string_view xtext);

}  // namespace zm::mail

#endif  // ZM_MAIL_XTEXT_H_
