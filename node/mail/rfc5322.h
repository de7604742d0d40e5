// RFC 5322 pieces every writer of headers needs (sendmail, the smtpserver's
// Received:, the scheduler's DSNs).
#ifndef ZM_MAIL_RFC5322_H_
#define ZM_MAIL_RFC5322_H_

#include <cstdint>
#include <string>

namespace zm::mail {

// "Thu, 20 Nov 2025 23:05:19 +0100" for `unix_seconds`, in local time with
// its offset. Day and month names are English whatever the locale.
std::string Rfc5322Date(int64_t unix_seconds);

}  // namespace zm::mail

#endif  // ZM_MAIL_RFC5322_H_
