// zm::submit::ParseAddressList: the addr-specs in an RFC 5322 address list.
//
// `sendmail -t` takes its recipients from To:, Cc: and Bcc: header fields,
// and every sendmail recipient argument may itself be a list
// ("alice, Bob <bob@example.org>"). Both go through this parser:
//
//   auto list = zm::submit::ParseAddressList(
//       "Bob (the boss) <bob@example.org>, friends: a@x, \"c d\"@y;");
//   // (*list)[0].address == "bob@example.org",
//   // (*list)[0].display_name == "Bob"; then a@x, "c d"@y
//
// Grammar (RFC 5322 section 3.4, with the obsolete forms real mail still
// carries): mailboxes with or without a display name, angle addresses with
// an obsolete source route (dropped), groups (`undisclosed-recipients:;`
// yields nothing), nested comments, quoted strings, domain literals, empty
// list elements. A bare local name without '@' ("root") is accepted: the
// router qualifies it. UTF-8 in atoms is accepted (RFC 6532).
//
// I/O-free and thread-compatible. Errors are InvalidArgument with a short
// reason naming what was expected ("unterminated quoted string").
#ifndef ZM_SENDMAIL_ADDRESS_LIST_H_
#define ZM_SENDMAIL_ADDRESS_LIST_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace zm::submit {

struct Mailbox {
  std::string display_name;  // unquoted, words joined by one space
  std::string address;       // the addr-spec as written (quotes kept)
};

struct AddressListLimits {
  size_t max_text_bytes = 64 * 1024;  // the whole (unfolded) field
  size_t max_address_bytes = 998;     // one addr-spec
  size_t max_addresses = 10000;       // per list
};

absl::StatusOr<std::vector<Mailbox>> ParseAddressList(
    std::string_view text, const AddressListLimits& limits = {});

}  // namespace zm::submit

#endif  // ZM_SENDMAIL_ADDRESS_LIST_H_
