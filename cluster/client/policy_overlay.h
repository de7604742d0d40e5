// zm::cluster::PolicyOverlay: a program's in-memory copy of the fleet's
// policy overlay, fed by ClusterClient::WatchPolicy, and the subjects it
// is keyed by.
//
// Subjects (ParseSubject normalises them; `zmailer policy` and the
// smtpserver use the same rules):
//   192.0.2.7, 2001:db8::7        one client address (also as /32, /128)
//   198.51.100.0/24, 2001:db8::/48 a network (host bits must be clear)
//   example.com                   that domain
//   .example.com                  that domain and every subdomain
//   user@example.com              one address (the domain lower-cased)
//
//   PolicyOverlay overlay;
//   auto sub = client->WatchPolicy(
//       [&](const v1::PolicyUpdate& u) { overlay.Apply(u); });
//   if (auto e = overlay.ForIp("192.0.2.7", now_ms)) ... e->action() ...
//   if (auto e = overlay.ForAddress("u@a.example.com", now_ms)) ...
//
// Lookups: ForIp takes the longest network holding the address (an exact
// address is a /32 or /128); ForAddress tries the address, then the
// domain walk a.example.com, .a.example.com, .example.com, .com. Entries
// past their expiry are ignored (they stay until the agent drops them).
// Thread-safe; lookups take a reader lock and never block on I/O.
#ifndef ZM_CLUSTER_CLIENT_POLICY_OVERLAY_H_
#define ZM_CLUSTER_CLIENT_POLICY_OVERLAY_H_

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "zmnode/cluster/v1/local.pb.h"

namespace zm::cluster {

namespace v1 = ::zmnode::cluster::v1;

enum class SubjectKind { kAddress4, kAddress6, kNetwork4, kNetwork6,
                         kDomain, kSubdomains, kMailbox };

struct Subject {
  SubjectKind kind = SubjectKind::kDomain;
  std::string text;  // canonical: "192.0.2.0/24", "example.com", ...
};

// InvalidArgument with a one-line reason for anything else.
absl::StatusOr<Subject> ParseSubject(std::string_view text);

// "reject", "defer", "freeze", "allow", "rate-class" and back.
std::optional<v1::PolicyAction> ParsePolicyAction(std::string_view name);
std::string_view PolicyActionName(v1::PolicyAction action);

class PolicyOverlay {
 public:
  // A snapshot replaces everything; otherwise each entry replaces its
  // subject's (deleted = true removes it). Entries whose subject does not
  // parse are skipped.
  void Apply(const v1::PolicyUpdate& update);

  std::optional<v1::PolicyEntry> ForIp(std::string_view ip,
                                       int64_t now_ms) const;
  std::optional<v1::PolicyEntry> ForAddress(std::string_view address,
                                            int64_t now_ms) const;
  size_t size() const;

 private:
  struct Net {
    bool v6 = false;
    std::array<unsigned char, 16> addr{};
    int len = 0;
  };
  static bool Live(const v1::PolicyEntry& e, int64_t now_ms) {
    return !e.deleted() && (e.expires_unix_ms() == 0 ||
                            e.expires_unix_ms() > now_ms);
  }
  void Put(const v1::PolicyEntry& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  // Networks by canonical subject (few: scanned for the longest match).
  std::map<std::string, std::pair<Net, v1::PolicyEntry>> nets_
      ABSL_GUARDED_BY(mu_);
  // Single addresses, domains, ".domains" and mailboxes by canonical
  // subject (many, e.g. published over-limit entries: hashed).
  std::unordered_map<std::string, v1::PolicyEntry> names_ ABSL_GUARDED_BY(mu_);
};

}  // namespace zm::cluster

#endif  // ZM_CLUSTER_CLIENT_POLICY_OVERLAY_H_
