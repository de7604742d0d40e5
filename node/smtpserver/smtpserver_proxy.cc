#include "node/smtpserver/smtpserver_proxy.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "node/common/strings.h"

namespace zm::smtpserver {
namespace {

constexpr std::string_view kV1Prefix = "PROXY ";
constexpr size_t kV1Max = 107;  // "PROXY" ... CRLF, the spec's bound
// "\r\n\r\n\0\r\nQUIT\n": 12 bytes, with a NUL inside.
constexpr std::string_view kV2Signature("\r\n\r\n\0\r\nQUIT\n", 12);

// Whether `data` is a (possibly complete) beginning of `prefix`.
bool StartsLike(std::string_view data, std::string_view prefix) {
  size_t n = std::min(data.size(), prefix.size());
  return data.substr(0, n) == prefix.substr(0, n);
}

absl::Status Bad(std::string_view why) {
  return absl::InvalidArgumentError(std::string(why));
}

bool ParsePort(std::string_view s, int* port) {
  if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return false;
  return ParseNumber(s, port) && *port >= 0 && *port <= 65535;
}

bool IsAddress(int family, std::string_view s) {
  unsigned char buf[16];
  return s.size() < 64 &&
         ::inet_pton(family, std::string(s).c_str(), buf) == 1;
}

absl::StatusOr<size_t> ParseV1(std::string_view data, ProxyHeader* out) {
  size_t end = data.substr(0, kV1Max).find("\r\n");
  if (end == std::string_view::npos) {
    if (data.size() >= kV1Max) return Bad("v1 line longer than 107 bytes");
    if (data.find('\n') != std::string_view::npos) {
      return Bad("v1 line does not end in CRLF");
    }
    return 0;
  }
  std::vector<std::string_view> f = Split(data.substr(0, end), ' ');
  ProxyHeader h;
  h.version = 1;
  if (f.size() >= 2 && f[1] == "UNKNOWN") {
    h.local = true;
    *out = h;
    return end + 2;
  }
  if (f.size() != 6) return Bad("v1 wants PROXY TCP4|TCP6 SRC DST SPORT DPORT");
  int family;
  if (f[1] == "TCP4") {
    family = AF_INET;
  } else if (f[1] == "TCP6") {
    family = AF_INET6;
  } else {
    return Bad(StrCat("v1 protocol '", f[1], "'"));
  }
  if (!IsAddress(family, f[2]) || !IsAddress(family, f[3])) {
    return Bad(StrCat("v1 address '", f[2], "' or '", f[3], "' is not ", f[1]));
  }
  if (!ParsePort(f[4], &h.src_port) || !ParsePort(f[5], &h.dst_port)) {
    return Bad("v1 port is not a number 0-65535");
  }
  h.src_addr = std::string(f[2]);
  h.dst_addr = std::string(f[3]);
  *out = h;
  return end + 2;
}

std::string Ntop(int family, const unsigned char* p) {
  char buf[INET6_ADDRSTRLEN] = {0};
  ::inet_ntop(family, p, buf, sizeof buf);
  return buf;
}

int Port(const unsigned char* p) { return (p[0] << 8) | p[1]; }

absl::StatusOr<size_t> ParseV2(std::string_view data, ProxyHeader* out) {
  if (data.size() < 16) return 0;
  const auto* b = reinterpret_cast<const unsigned char*>(data.data());
  if ((b[12] >> 4) != 2) return Bad(StrCat("v2 version ", b[12] >> 4));
  int command = b[12] & 0x0F;
  if (command > 1) return Bad(StrCat("v2 command ", command));
  size_t len = (size_t{b[14]} << 8) | b[15];
  if (16 + len > kMaxProxyHeader) {
    return Bad(StrCat("v2 header of ", 16 + len, " bytes (at most ",
                      kMaxProxyHeader, ")"));
  }
  if (data.size() < 16 + len) return 0;
  ProxyHeader h;
  h.version = 2;
  int family = b[13] >> 4, transport = b[13] & 0x0F;
  const unsigned char* a = b + 16;
  if (command == 0 || transport != 1 || (family != 1 && family != 2)) {
    // LOCAL (the proxy's own check), or a family/transport we do not
    // take addresses from (UNSPEC, UNIX, DGRAM): the peer's address counts.
    h.local = true;
  } else if (family == 1) {
    if (len < 12) return Bad("v2 INET block shorter than 12 bytes");
    h.src_addr = Ntop(AF_INET, a);
    h.dst_addr = Ntop(AF_INET, a + 4);
    h.src_port = Port(a + 8);
    h.dst_port = Port(a + 10);
  } else {
    if (len < 36) return Bad("v2 INET6 block shorter than 36 bytes");
    h.src_addr = Ntop(AF_INET6, a);
    h.dst_addr = Ntop(AF_INET6, a + 16);
    h.src_port = Port(a + 32);
    h.dst_port = Port(a + 34);
  }
  *out = h;
  return 16 + len;
}

bool ParseIp(std::string_view s, bool* v6, std::array<unsigned char, 16>* a) {
  std::string ip(s);
  a->fill(0);
  if (::inet_pton(AF_INET, ip.c_str(), a->data()) == 1) {
    *v6 = false;
    return true;
  }
  if (::inet_pton(AF_INET6, ip.c_str(), a->data()) == 1) {
    *v6 = true;
    // An IPv4-mapped address is the IPv4 address.
    static constexpr unsigned char kMapped[12] = {0, 0, 0, 0, 0,    0,
                                                  0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(a->data(), kMapped, 12) == 0) {
      std::memmove(a->data(), a->data() + 12, 4);
      std::fill(a->begin() + 4, a->end(), 0);
      *v6 = false;
    }
    return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<size_t> ParseProxyHeader(std::string_view data,
                                        ProxyHeader* out) {
  if (data.empty()) return 0;
  if (StartsLike(data, kV2Signature)) {
    if (data.size() < kV2Signature.size()) return 0;
    return ParseV2(data, out);
  }
  if (StartsLike(data, kV1Prefix)) {
    if (data.size() < kV1Prefix.size()) return 0;
    return ParseV1(data, out);
  }
  return Bad("the connection does not start with one");
}

size_t ProxyBytesWanted(std::string_view data) {
  if (!StartsLike(data, kV2Signature) || data.size() < kV2Signature.size()) {
    // v1 (or not yet told apart): byte by byte; the signatures differ in
    // their first byte, and a v1 line is short.
    return 1;
  }
  if (data.size() < 16) return 16 - data.size();
  const auto* b = reinterpret_cast<const unsigned char*>(data.data());
  size_t total = 16 + ((size_t{b[14]} << 8) | b[15]);
  return total > data.size() ? total - data.size() : 1;
}

absl::Status ProxyTrust::Add(std::string_view cidr) {
  std::string_view ip = cidr;
  int len = -1;
  if (size_t slash = cidr.find('/'); slash != std::string_view::npos) {
    ip = cidr.substr(0, slash);
    if (!ParseNumber(cidr.substr(slash + 1), &len)) len = -2;
  }
  Net n;
  if (!ParseIp(ip, &n.v6, &n.addr)) {
    return absl::InvalidArgumentError(
        StrCat("'", cidr, "' is not an address or network"));
  }
  int max = n.v6 ? 128 : 32;
  if (len == -1) len = max;
  if (len < 0 || len > max) {
    return absl::InvalidArgumentError(
        StrCat("'", cidr, "': prefix length must be 0-", max));
  }
  n.len = len;
  nets_.push_back(n);
  return absl::OkStatus();
}

bool ProxyTrust::Contains(std::string_view ip) const {
  bool v6;
  std::array<unsigned char, 16> a;
  if (!ParseIp(ip, &v6, &a)) return false;
  for (const Net& n : nets_) {
    if (n.v6 != v6) continue;
    int full = n.len / 8, rest = n.len % 8;
    if (std::memcmp(a.data(), n.addr.data(), full) != 0) continue;
    if (rest != 0) {
      unsigned char mask = static_cast<unsigned char>(0xFF << (8 - rest));
      if ((a[full] & mask) != (n.addr[full] & mask)) continue;
    }
    return true;
  }
  return false;
}

}  // namespace zm::smtpserver
