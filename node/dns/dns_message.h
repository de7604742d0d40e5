// Internal to zm_dns: decoding a DNS answer message (RFC 1035 section 4)
// into the records the Resolver returns, with their TTLs. c-ares 1.18's own
// parsers do not report TTLs for MX/TXT/SRV/PTR, and the cache needs them.
#ifndef ZM_DNS_DNS_MESSAGE_H_
#define ZM_DNS_DNS_MESSAGE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace zm::dns::internal {

inline constexpr int kTypeA = 1;
inline constexpr int kTypePtr = 12;
inline constexpr int kTypeMx = 15;
inline constexpr int kTypeTxt = 16;
inline constexpr int kTypeAaaa = 28;
inline constexpr int kTypeSrv = 33;
inline constexpr int kTypeSoa = 6;

// One decoded record. MX: n1 = preference, text = host. SRV: n1 priority,
// n2 weight, n3 port, text = target. A/AAAA: text = address. PTR: text =
// name. TXT: text = the character-strings concatenated. Names are
// lower-case without the trailing dot ("" for the root).
struct Record {
  int type = 0;
  uint32_t ttl = 0;
  int n1 = 0, n2 = 0, n3 = 0;
  std::string text;
};

struct Message {
  int rcode = 0;
  std::vector<Record> answers;  // only records of the asked type
  // From an SOA in the authority section: how long a negative answer
  // (NXDOMAIN, NODATA) may be cached (RFC 2308: min(TTL, MINIMUM)).
  std::optional<uint32_t> negative_ttl;
};

// Decodes `len` bytes; keeps answers of `type` only. InvalidArgument for a
// truncated or malformed message.
absl::StatusOr<Message> ParseMessage(const unsigned char* buf, int len,
                                     int type);

}  // namespace zm::dns::internal

#endif  // ZM_DNS_DNS_MESSAGE_H_
