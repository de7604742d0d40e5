// zm::tlspolicy DANE (RFC 7672, RFC 7671): which TLSA records of an MX
// host an SMTP client may use. The matching itself is OpenSSL's DANE
// verifier (smtpclient::TlsOptions::dane).
//
//   auto a = secure->Lookup(TlsaName(mx_host, 25), dns::kRrTlsa);
//   std::vector<smtpclient::TlsaRecord> usable = UsableTlsa(a->rdata);
//   if (!usable.empty()) { /* DANE: STARTTLS required, must match */ }
#ifndef ZM_TLSPOLICY_DANE_H_
#define ZM_TLSPOLICY_DANE_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "node/ta/smtpclient/smtpclient.h"

namespace zm::tlspolicy {

// "_25._tcp.mx.example.net".
std::string TlsaName(std::string_view host, int port);

// One TLSA RDATA (usage, selector, matching type, data); nullopt if
// shorter than 4 bytes.
std::optional<smtpclient::TlsaRecord> ParseTlsa(std::string_view rdata);

// RFC 7672 section 3.1: DANE-TA(2) and DANE-EE(3), selector 0 or 1,
// matching type 0, 1 (32 bytes of SHA-256) or 2 (64 bytes of SHA-512).
// PKIX-TA(0)/PKIX-EE(1) and malformed records are unusable for SMTP.
bool Usable(const smtpclient::TlsaRecord& t);
std::vector<smtpclient::TlsaRecord> UsableTlsa(
    const std::vector<std::string>& rdata);

}  // namespace zm::tlspolicy

#endif  // ZM_TLSPOLICY_DANE_H_
