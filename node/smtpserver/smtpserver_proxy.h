// The PROXY protocol (HAProxy's, versions 1 and 2) in front of the
// smtpserver's listeners: a load balancer or TCP proxy that cannot keep the
// client's address (Kubernetes externalTrafficPolicy: Cluster, a cloud
// network load balancer in proxy mode) sends it in a header before the
// SMTP conversation.
//
//   PARAM proxy-protocol smtp submission     # the listeners that expect it
//   PARAM proxy-trusted  10.0.0.0/8 fd00::/8 # who may send it (repeatable)
//
// On such a listener, a connection from a trusted network must begin with a
// header (v1 text or v2 binary, told apart by its first bytes), read within
// proxy-timeout seconds and never past its end. Its source address then
// replaces the peer's for everything: connection limits, policy, rate
// limits, the log, Received:. A missing or malformed header closes the
// connection (logged). A connection from any other network is served as a
// direct one with its own address, and a header it sends is just an
// unknown command. A v2 LOCAL or v1 UNKNOWN header (the proxy's own health
// check) keeps the peer's address.
//
// Usage:
//   ProxyHeader h;
//   auto n = ParseProxyHeader(peeked_bytes, &h);  // 0: need more bytes
//   if (n.ok() && *n > 0) { consume *n bytes; use h.src_addr ... }
#ifndef ZM_SMTPSERVER_SMTPSERVER_PROXY_H_
#define ZM_SMTPSERVER_SMTPSERVER_PROXY_H_

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace zm::smtpserver {

// A v1 header is at most 107 bytes; a v2 one is 16 + its length, which we
// bound (addresses and a few TLVs fit easily).
inline constexpr size_t kMaxProxyHeader = 536;

struct ProxyHeader {
  int version = 0;     // 1 or 2
  bool local = false;  // v2 LOCAL, v1 UNKNOWN: no addresses, keep the peer's
  std::string src_addr, dst_addr;  // textual IPv4/IPv6
  int src_port = 0, dst_port = 0;
};

// Parses a header at the start of `data`. Returns the number of bytes it
// takes (> 0) and fills *out; 0 when `data` is a valid beginning that needs
// more bytes; InvalidArgument (a one-line reason) when it is not a header.
absl::StatusOr<size_t> ParseProxyHeader(std::string_view data,
                                        ProxyHeader* out);

// How many more bytes to read after `data` (a beginning ParseProxyHeader
// answered 0 for) without reading past the header: the rest of a v2
// header once its length is known, else 1 (a v1 line ends at its CRLF).
size_t ProxyBytesWanted(std::string_view data);

// The networks PROXY headers are accepted from (PARAM proxy-trusted).
class ProxyTrust {
 public:
  // "10.0.0.0/8", "fd00::/8", "192.0.2.7" (a host). Error: not a network.
  absl::Status Add(std::string_view cidr);
  bool Contains(std::string_view ip) const;
  bool empty() const { return nets_.empty(); }

 private:
  struct Net {
    bool v6 = false;
    std::array<unsigned char, 16> addr{};
    int len = 0;
  };
  std::vector<Net> nets_;
};

}  // namespace zm::smtpserver

#endif  // ZM_SMTPSERVER_SMTPSERVER_PROXY_H_
