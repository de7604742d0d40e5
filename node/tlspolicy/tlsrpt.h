// zm::tlspolicy TLS reporting data (RFC 8460): the smtp agent records the
// outcome of every TLS policy decision per policy domain, and `zmailer
// tlsrpt` turns a day of them into aggregate reports (section 4).
//
//   TlsrptLog log(node.log() + "/tlsrpt");
//   log.Record({.policy_domain = "example.net", .type = PolicyType::kSts,
//               .policy = pol.Lines(), .mx_host = "mx1.example.net",
//               .ip = "192.0.2.1", .result = "certificate-host-mismatch"},
//              time(nullptr));
//   auto reports = Aggregate(node.log() + "/tlsrpt", "2026-11-21", "org");
//
// One file per UTC day (DIR/YYYY-MM-DD), one tab-separated line per
// session, appended with O_APPEND (several agents share it).
#ifndef ZM_TLSPOLICY_TLSRPT_H_
#define ZM_TLSPOLICY_TLSRPT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace zm::tlspolicy {

enum class PolicyType { kSts, kTlsa, kNoPolicy };
std::string_view PolicyTypeName(PolicyType t);  // "sts", "tlsa", ...

struct TlsResult {
  std::string policy_domain;
  PolicyType type = PolicyType::kNoPolicy;
  std::vector<std::string> policy;  // policy-string lines
  std::string mx_host;
  std::string ip;
  // "" = a successful session, else an RFC 8460 result type:
  // "starttls-not-supported", "certificate-host-mismatch",
  // "certificate-expired", "certificate-not-trusted", "validation-failure",
  // "tlsa-invalid", "dnssec-invalid", "sts-policy-fetch-error",
  // "sts-policy-invalid", "sts-webpki-invalid".
  std::string result;
  std::string detail;  // additional-information
};

class TlsrptLog {
 public:
  explicit TlsrptLog(std::string dir) : dir_(std::move(dir)) {}
  absl::Status Record(const TlsResult& r, int64_t unix_now);

 private:
  std::string dir_;
};

// "2026-11-21" for a Unix time (UTC).
std::string Day(int64_t unix_time);

// The RFC 8460 reports of one day, one per policy domain (sorted by
// domain; only `domain` if not empty). NotFound if the day has no data.
absl::StatusOr<std::vector<nlohmann::json>> Aggregate(
    const std::string& dir, std::string_view day, std::string_view org,
    std::string_view domain = "");

// ---- sending the reports (RFC 8460 sections 3 and 5) ----------------------

// The rua= URIs ("mailto:tlsrpt@example.net", "https://...") of the one
// "v=TLSRPTv1" record among the `_smtp._tls.DOMAIN` TXT records; NotFound
// when there is none or more than one, InvalidArgument without rua=.
absl::StatusOr<std::vector<std::string>> ParseTlsrptRecords(
    const std::vector<std::string>& txt);

// The address of a "mailto:" URI (RFC 6068: %-escapes decoded, "?..."
// dropped); nullopt for any other scheme or a malformed one.
std::optional<std::string> MailtoAddress(std::string_view uri);

struct ReportMail {
  std::string from;       // the From: address
  std::string to;         // the recipient (a mailto: address)
  std::string submitter;  // our host name (TLS-Report-Submitter)
  int64_t now = 0;        // Unix seconds, for Date:
};

// A report of Aggregate() as the mail of section 5.3: multipart/report;
// report-type="tlsrpt", a short text part and the JSON gzipped as
// application/tlsrpt+gzip (base64, the section 5.1 file name); Subject
// "Report Domain: D Submitter: S Report-ID: <id>", TLS-Report-Domain and
// TLS-Report-Submitter headers. LF line endings.
absl::StatusOr<std::string> ReportMessage(const nlohmann::json& report,
                                          const ReportMail& mail);

}  // namespace zm::tlspolicy

#endif  // ZM_TLSPOLICY_TLSRPT_H_
