// zm::dns::SecureResolver: DNSSEC-validated lookups through libunbound, for
// DANE in the smtp transport agent (RFC 7672 wants the MX, address and
// TLSA answers validated). The validation is libunbound's; this module only
// asks and decodes.
//
//   auto o = zm::dns::OptionsForNode(node);          // etc/resolver.conf
//   if (!o->trust_anchors.empty()) {
//     auto r = zm::dns::SecureResolver::Create(*o);
//     auto mx = (*r)->Lookup("example.org", zm::dns::kRrMx);
//     if (mx.ok() && mx->bogus) { /* validation failed: defer */ }
//     if (mx.ok() && mx->secure) { /* mx->mx is DNSSEC-validated */ }
//   }
//
// Results: an Answer for NOERROR (records or NODATA) and NXDOMAIN, with
// `secure` (validated), or `bogus` (validation failed: why_bogus says why;
// nothing in it may be used). Unavailable for SERVFAIL, a timeout or a
// resolver failure. Names are lower-case without the trailing dot.
//
// Thread-compatible: one SecureResolver per thread (the agent has one).
#ifndef ZM_DNS_SECURE_RESOLVER_H_
#define ZM_DNS_SECURE_RESOLVER_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "node/dns/resolver.h"

struct ub_ctx;

namespace zm::dns {

inline constexpr int kRrA = 1;
inline constexpr int kRrMx = 15;
inline constexpr int kRrAaaa = 28;
inline constexpr int kRrTlsa = 52;

struct Answer {
  bool secure = false;
  bool bogus = false;
  bool nxdomain = false;
  std::string why_bogus;
  std::vector<std::string> rdata;      // wire-format RDATA, one per record
  std::vector<MxRecord> mx;            // MX queries: sorted by preference
  std::vector<std::string> addresses;  // A/AAAA queries: as text
  // The name the answer is for after following CNAMEs (lower-case, no
  // trailing dot); "" when the name is not an alias. An alias chain is
  // covered by `secure` (every link validated) and `bogus`.
  std::string canonical;
  bool empty() const { return rdata.empty(); }
};

class SecureResolver {
 public:
  // `options.trust_anchors` must not be empty; servers from
  // options.dnssec_servers, else options.servers, else /etc/resolv.conf,
  // or none with dnssec_recursive. A query gives up after
  // timeout_ms * attempts.
  static absl::StatusOr<std::unique_ptr<SecureResolver>> Create(
      const ResolverOptions& options);
  ~SecureResolver();
  SecureResolver(const SecureResolver&) = delete;
  SecureResolver& operator=(const SecureResolver&) = delete;

  absl::StatusOr<Answer> Lookup(std::string_view name, int rrtype);
  // A and AAAA: secure only if both answers are; bogus if either is.
  absl::StatusOr<Answer> LookupAddresses(std::string_view host);

 private:
  SecureResolver(ub_ctx* ctx, int timeout_ms) : ctx_(ctx), timeout_ms_(timeout_ms) {}
  ub_ctx* ctx_;
  int timeout_ms_;
};

}  // namespace zm::dns

#endif  // ZM_DNS_SECURE_RESOLVER_H_
