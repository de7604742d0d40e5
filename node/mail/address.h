// Envelope addresses: splitting `local@domain` the way the router needs it.
//
//   auto a = zm::mail::ParseAddress("<@relay.example:Bob.Smith@Example.NET>");
//   // a->local == "Bob.Smith", a->domain == "example.net"
//
// The parser is small and I/O-free. It accepts what SMTP's MAIL/RCPT and
// the spool carry (RFC 5321 paths, leniently):
//   - optional angle brackets; `<>` (or "") is the null address;
//   - source routes `@a,@b:user@dom` are split off into `source_route`
//     (the router ignores them, RFC 5321 4.1.2, unless allowsourceroute);
//   - the local part may be a quoted string ("john doe"@example.org); it is
//     split at the last '@' outside quotes;
//   - the domain is lower-cased, one trailing dot removed; domain literals
//     `[192.0.2.1]`, `[IPv6:::1]` are kept as literals;
//   - `%`-hack (`u%h@our.domain`) and `!`-paths (`h!u`) are NOT relays: they
//     stay part of the local part.
// Compiled into zm_relations (node/relations/CMakeLists.txt), not zm_mail;
// link zm_relations or zm_routing to use it.
#ifndef ZM_MAIL_ADDRESS_H_
#define ZM_MAIL_ADDRESS_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace zm::mail {

// Bounds (RFC 5321 4.5.3.1 says 64 and 255; we accept up to these so that
// slightly oversized real-world local parts still route).
inline constexpr size_t kMaxLocalPart = 256;
inline constexpr size_t kMaxDomain = 255;
// The whole address without its angle brackets, source route included.
inline constexpr size_t kMaxAddress = kMaxLocalPart + kMaxDomain + 512;

struct Address {
  std::string local;   // as written (quotes kept), "" only for null
  std::string domain;  // lower-cased; "" when the address had no '@'
  bool null = false;   // `<>`
  std::vector<std::string> source_route;  // hops of `@a,@b:`, lower-case

  // local@domain, or local alone without a domain, or "" for null.
  std::string ToString() const;
};

// InvalidArgument with a short reason ("unbalanced quote", "empty domain",
// "control character", ...) for anything that is not an address.
absl::StatusOr<Address> ParseAddress(std::string_view text);

// A quoted local part without its quotes and backslash escapes; an
// unquoted one unchanged.
std::string UnquoteLocalPart(std::string_view local);

}  // namespace zm::mail

#endif  // ZM_MAIL_ADDRESS_H_
