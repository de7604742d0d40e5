// zm::dns::Resolver: DNS lookups for the router, the smtp transport agent
// and the smtpserver, on c-ares, with a small cache that honours TTLs.
//
//   auto r = zm::dns::Resolver::Create(zm::dns::OptionsForNode(node));
//   auto mx = (*r)->LookupMx("example.org");
//   if (!mx.ok() && absl::IsUnavailable(mx.status())) { /* try later */ }
//
// Results, the same for every lookup:
//   OK, non-empty    the records (MX sorted by preference, ties shuffled)
//   OK, empty        the name exists but has no record of this type (NODATA)
//   NotFound         NXDOMAIN: the name does not exist (permanent)
//   Unavailable      SERVFAIL, timeout, refused, no server reachable
//                    (temporary: route or deliver later)
//   InvalidArgument  a malformed name or address (permanent)
// A null MX (RFC 7505: one MX "0 .") is returned as one MxRecord with an
// empty host; callers bounce.
//
// Servers come from etc/resolver.conf of the node when it exists
// (`nameserver ADDR[:PORT]` lines, IPv6 as `[ADDR]:PORT`; `timeout MS`;
// `attempts N`), else from the system's /etc/resolv.conf. Tests point a
// node at a dnsmasq on 127.0.0.1:PORT that way.
//
// Thread-safe: one Resolver may serve many threads; each call blocks the
// calling thread until answered or timed out (never longer than
// timeout_ms * attempts).
#ifndef ZM_DNS_RESOLVER_H_
#define ZM_DNS_RESOLVER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "node/common/node_dir.h"

namespace zm::dns {

struct MxRecord {
  int preference = 0;
  std::string host;  // lower-case, no trailing dot; "" = null MX
};

struct SrvRecord {
  int priority = 0;
  int weight = 0;
  int port = 0;
  std::string target;
};

struct ResolverOptions {
  // "127.0.0.1", "127.0.0.1:5353", "[::1]:5353"; empty = /etc/resolv.conf.
  std::vector<std::string> servers;
  int timeout_ms = 5000;
  int attempts = 2;
  size_t cache_entries = 10000;  // 0 = no cache
  // DNSSEC (node/dns/secure_resolver.h, used for DANE): trust anchor files
  // (`dnssec-trust-anchor FILE`, DS or DNSKEY records in zone file form);
  // none = no DNSSEC lookups. The servers to ask (`dnssec-server
  // ADDR[:PORT]`, they must pass DNSSEC records through; none = the
  // nameserver lines, else /etc/resolv.conf), or `dnssec-server recursive`:
  // resolve from the root servers.
  std::vector<std::string> trust_anchors;
  std::vector<std::string> dnssec_servers;
  bool dnssec_recursive = false;
  // `dnssec-unblock-zone NAME`: libunbound answers the names RFC 6761
  // reserves (test., invalid., onion., ...) itself with NXDOMAIN; this
  // lets NAME go to the servers. For test DNS servers only; default none.
  std::vector<std::string> dnssec_unblock_zones;
};

// The labels of an address reversed, as PTR names and DNS blocklists use
// them: "7.2.0.192" for 192.0.2.7, 32 nibbles for an IPv6 address;
// InvalidArgument for anything else.
absl::StatusOr<std::string> ReversedAddress(std::string_view ip);
// The PTR name of an address: ReversedAddress + ".in-addr.arpa" or
// ".ip6.arpa".
absl::StatusOr<std::string> ReverseName(std::string_view ip);

// Reads etc/resolver.conf of `node` (absent: defaults, system servers).
// InvalidArgument "file:line: what" for a malformed line.
absl::StatusOr<ResolverOptions> OptionsForNode(const NodeDir& node);

class Resolver {
 public:
  static absl::StatusOr<std::unique_ptr<Resolver>> Create(
      const ResolverOptions& options);
  virtual ~Resolver() = default;

  virtual absl::StatusOr<std::vector<MxRecord>> LookupMx(
      std::string_view domain) = 0;
  // Addresses as text ("192.0.2.1", "2001:db8::1").
  virtual absl::StatusOr<std::vector<std::string>> LookupA(
      std::string_view host) = 0;
  virtual absl::StatusOr<std::vector<std::string>> LookupAaaa(
      std::string_view host) = 0;
  // Reverse lookup of a textual IPv4 or IPv6 address.
  virtual absl::StatusOr<std::vector<std::string>> LookupPtr(
      std::string_view ip) = 0;
  virtual absl::StatusOr<std::vector<std::string>> LookupTxt(
      std::string_view name) = 0;
  virtual absl::StatusOr<std::vector<SrvRecord>> LookupSrv(
      std::string_view name) = 0;
};

}  // namespace zm::dns

#endif  // ZM_DNS_RESOLVER_H_
