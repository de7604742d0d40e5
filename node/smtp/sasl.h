// zm::smtp SASL helpers for AUTH (RFC 4954): base64 as SMTP uses it and
// the PLAIN mechanism's message (RFC 4616).
//
//   std::string raw;
//   if (!Base64Decode("AGFsaWNlAHNlY3JldA==", &raw)) reply 501 5.5.2;
//   PlainCredentials c;
//   if (!ParsePlain(raw, &c)) reply 501 5.5.2;   // c.user == "alice"
//
// Pure functions; bounded by their input.
#ifndef ZM_SMTP_SASL_H_
#define ZM_SMTP_SASL_H_

#include <string>
#include <string_view>

namespace zm::smtp {

// Strict RFC 4648 base64 (padding required, no whitespace). "=" alone is
// the empty string, as RFC 4954 uses it for an empty initial response.
bool Base64Decode(std::string_view in, std::string* out);
std::string Base64Encode(std::string_view in);

struct PlainCredentials {
  std::string authzid;  // "" = same as user
  std::string user;
  std::string password;
};

// "authzid NUL authcid NUL passwd"; false unless exactly two NULs and a
// non-empty user.
bool ParsePlain(std::string_view message, PlainCredentials* out);

}  // namespace zm::smtp

#endif  // ZM_SMTP_SASL_H_
