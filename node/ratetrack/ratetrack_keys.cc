// Source keys and the count fields by name.
#include <arpa/inet.h>

#include <cstring>

#include "node/common/strings.h"
#include "node/ratetrack/rate_tracker.h"

namespace zm::ratetrack {

Counts& Counts::operator+=(const Counts& o) {
  messages += o.messages;
  recipients += o.recipients;
  auth_failures += o.auth_failures;
  aborts += o.aborts;
  excesses += o.excesses;
  return *this;
}

bool IsCountField(std::string_view field) {
  return field == "messages" || field == "recipients" ||
         field == "auth_failures" || field == "aborts" || field == "excesses";
}

uint64_t FieldValue(const Counts& c, std::string_view field) {
  if (field == "messages") return c.messages;
  if (field == "recipients") return c.recipients;
  if (field == "auth_failures") return c.auth_failures;
  if (field == "aborts") return c.aborts;
  if (field == "excesses") return c.excesses;
  return 0;
}

absl::StatusOr<std::string> KeyForIp(std::string_view ip) {
  std::string text(ip);
  // "[192.0.2.7]" and "[IPv6:2001:db8::1]" as written in SMTP are accepted.
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
    text = text.substr(1, text.size() - 2);
  }
  if (StartsWithIgnoreCase(text, "IPv6:")) text = text.substr(5);
  if (text.empty() || text.size() > INET6_ADDRSTRLEN) {
    return absl::InvalidArgumentError(StrCat("bad IP address \"", ip, "\""));
  }
  in_addr v4{};
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    char buf[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &v4, buf, sizeof buf);
    return StrCat("ip4:", buf);
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, text.c_str(), &v6) != 1) {
    return absl::InvalidArgumentError(StrCat("bad IP address \"", ip, "\""));
  }
  static constexpr unsigned char kMapped[12] = {0, 0, 0, 0, 0,    0,
                                                0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(v6.s6_addr, kMapped, sizeof kMapped) == 0) {
    std::memcpy(&v4, v6.s6_addr + 12, 4);
    char buf[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &v4, buf, sizeof buf);
    return StrCat("ip4:", buf);
  }
  // One customer usually gets a whole /64: count the prefix, not the host.
  std::memset(v6.s6_addr + 8, 0, 8);
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(AF_INET6, &v6, buf, sizeof buf);
  return StrCat("ip6:", buf, "/64");
}

std::string KeyForUser(std::string_view user) {
  return StrCat("user:", ToLower(user));
}

}  // namespace zm::ratetrack
