// zm::tlspolicy MTA-STS (RFC 8461): the `_mta-sts` TXT record, the policy
// file and its MX patterns, the HTTPS fetch, and the on-disk cache.
//
//   auto id = ParseStsRecords(txt_records);          // "20260101T000000"
//   auto text = FetchStsPolicy("example.net", ips, fetch_options);
//   auto pol = ParseStsPolicy(*text);                 // mode, mx, max_age
//   if (pol->mode == StsMode::kEnforce && !StsMxMatches(pol->mx, mx_host))
//     { /* this MX must not be used */ }
//   StsCache cache(node.db() + "/mta-sts");
//   cache.Put("example.net", *pol);
//
// The fetch speaks HTTP/1.0 over TLS (smtpclient::Connection), verifies
// the chain (system store or a CA file) and the name
// `mta-sts.<domain>`, takes only a 200 answer (no redirects), at most
// 64 KiB, within a deadline.
#ifndef ZM_TLSPOLICY_MTASTS_H_
#define ZM_TLSPOLICY_MTASTS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace zm::tlspolicy {

enum class StsMode { kNone, kTesting, kEnforce };
std::string_view StsModeName(StsMode m);  // "none", "testing", "enforce"

// RFC 8461 section 3.2: at most a year.
inline constexpr int64_t kMaxStsAge = 31557600;
inline constexpr size_t kMaxStsPolicy = 64 * 1024;

struct StsPolicy {
  StsMode mode = StsMode::kNone;
  std::vector<std::string> mx;  // patterns, lower case: "mx.example.net",
                                // "*.example.net"
  int64_t max_age = 0;          // seconds
  // Not in the file: the TXT id it was fetched for, when (Unix seconds).
  std::string id;
  int64_t fetched = 0;
  bool Expired(int64_t now) const { return now >= fetched + max_age; }
  // The policy's lines ("version: STSv1", "mode: enforce", ...), for
  // TLS reports.
  std::vector<std::string> Lines() const;
};

// The id of the one "v=STSv1" record among a name's TXT records; NotFound
// when there is none or more than one (RFC 8461 section 3.1: no policy);
// InvalidArgument for a malformed STSv1 record.
absl::StatusOr<std::string> ParseStsRecords(
    const std::vector<std::string>& txt);

// The policy file (section 3.2). InvalidArgument with the reason for a
// missing or bad version, mode, max_age, or an enforce/testing policy
// without mx lines. Unknown fields are ignored.
absl::StatusOr<StsPolicy> ParseStsPolicy(std::string_view text);

// Section 4.1: `host` matches a pattern exactly, or "*.suffix" when host
// is one label plus ".suffix" (case-insensitive, trailing dots ignored).
bool StsMxMatches(const std::vector<std::string>& patterns,
                  std::string_view host);

struct FetchOptions {
  std::string ca_file;  // "" = the system's CA store
  int port = 443;       // tests use a high port
  int timeout_ms = 30000;
};

// GET https://mta-sts.<domain>/.well-known/mta-sts.txt from the first of
// `ips` (the addresses of mta-sts.<domain>) that answers. The body on a
// 200; Unavailable with what went wrong otherwise (connection, TLS
// verification, status, size, content type).
absl::StatusOr<std::string> FetchStsPolicy(std::string_view domain,
                                           const std::vector<std::string>& ips,
                                           const FetchOptions& options);

// Policies by domain, one file each in a folder (created when needed).
// A file holds "id FETCHED" on its first line and the policy text after.
class StsCache {
 public:
  explicit StsCache(std::string dir) : dir_(std::move(dir)) {}
  // The cached policy (expired or not); nullopt if none or unreadable.
  std::optional<StsPolicy> Get(std::string_view domain) const;
  absl::Status Put(std::string_view domain, const StsPolicy& policy);

 private:
  std::string dir_;
};

}  // namespace zm::tlspolicy

#endif  // ZM_TLSPOLICY_MTASTS_H_
