// What a peer may send: every record is checked before it is merged, and a
// record that fails is refused whole (nothing a peer sends can abort us).
#include <arpa/inet.h>

#include <cstring>

#include "cluster/state/state_internal.h"
#include "fmt/format.h"
#include "node/common/strings.h"

namespace zm::cluster {
namespace {

constexpr size_t kMaxSubject = 320;
constexpr size_t kMaxRateClass = 64;

bool ValidDomain(std::string_view d) {
  if (d.empty() || d.size() > 253) return false;
  for (std::string_view label : Split(d, '.', /*skip_empty=*/false)) {
    if (label.empty() || label.size() > 63) return false;
    if (label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                c == '_';
      if (!ok) return false;
    }
  }
  return true;
}

// Canonical text of an IPv4 or IPv6 address with the bits past `prefix`
// cleared (prefix < 0: none cleared); nullopt if `ip` is no address.
std::optional<std::string> CanonicalIp(const std::string& ip, int prefix,
                                       bool* v6) {
  unsigned char buf[16] = {};
  int family = AF_INET;
  size_t len = 4;
  if (inet_pton(AF_INET, ip.c_str(), buf) != 1) {
    if (inet_pton(AF_INET6, ip.c_str(), buf) != 1) return std::nullopt;
    family = AF_INET6;
    len = 16;
  }
  *v6 = family == AF_INET6;
  if (prefix >= 0) {
    if (static_cast<size_t>(prefix) > len * 8) return std::nullopt;
    for (size_t bit = prefix; bit < len * 8; ++bit) {
      buf[bit / 8] &= static_cast<unsigned char>(~(0x80u >> (bit % 8)));
    }
  }
  char out[INET6_ADDRSTRLEN] = {};
  if (inet_ntop(family, buf, out, sizeof(out)) == nullptr) return std::nullopt;
  return std::string(out);
}

absl::Status Bad(std::string_view what) {
  return absl::InvalidArgumentError(std::string(what));
}

bool AbsurdTime(int64_t ms, int64_t now_ms, const FleetStateOptions& opt) {
  return ms < internal::kMinUnixMs || ms > now_ms + opt.max_clock_skew_ms;
}

}  // namespace

absl::StatusOr<std::string> NormalizePolicySubject(std::string_view subject) {
  std::string s = ToLower(Trim(subject));
  if (s.empty() || s.size() > kMaxSubject) {
    return Bad(fmt::format("policy subject \"{}\": empty or too long",
                           std::string(subject.substr(0, 64))));
  }
  auto bad = [&] {
    return Bad(fmt::format(
        "policy subject \"{}\": not an IP address, CIDR, domain or address",
        s.substr(0, 64)));
  };
  if (size_t at = s.rfind('@'); at != std::string::npos) {
    std::string_view local = std::string_view(s).substr(0, at);
    std::string_view domain = std::string_view(s).substr(at + 1);
    if (local.empty() || local.size() > 64 || !ValidDomain(domain)) {
      return bad();
    }
    for (char c : local) {
      if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f || c == '@') {
        return bad();
      }
    }
    return s;
  }
  bool v6 = false;
  if (size_t slash = s.find('/'); slash != std::string::npos) {
    std::optional<int64_t> prefix =
        ParseInt(std::string_view(s).substr(slash + 1));
    if (!prefix || *prefix < 0 || *prefix > 128) return bad();
    std::optional<std::string> ip =
        CanonicalIp(s.substr(0, slash), static_cast<int>(*prefix), &v6);
    if (!ip) return bad();
    return fmt::format("{}/{}", *ip, *prefix);
  }
  if (std::optional<std::string> ip = CanonicalIp(s, -1, &v6)) return *ip;
  if (!ValidDomain(s)) return bad();
  return s;
}

namespace internal {

bool ValidToken(std::string_view s) {
  if (s.empty() || s.size() > 255) return false;
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) return false;
  }
  return true;
}

bool ValidText(std::string_view s, size_t max) {
  if (s.size() > max) return false;
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return false;
  }
  return true;
}

absl::Status ValidateRateSlot(const v1::RateSlot& r,
                              const FleetStateOptions& opt, int64_t now_ms) {
  if (r.key().empty() || !ValidText(r.key(), opt.max_field_bytes)) {
    return Bad("rate slot: empty, long or binary key");
  }
  if (!ValidToken(r.node_id())) return Bad("rate slot: bad node id");
  if (r.version() == 0) return Bad("rate slot: version 0");
  if (r.slot_start() % opt.rate_slot_seconds != 0) {
    return Bad(fmt::format("rate slot: start {} not a multiple of {} s",
                           r.slot_start(), opt.rate_slot_seconds));
  }
  if (r.slot_start() < kMinUnixMs / 1000 ||
      r.slot_start() > (now_ms + opt.max_clock_skew_ms) / 1000) {
    return Bad(fmt::format("rate slot: absurd start {}", r.slot_start()));
  }
  return absl::OkStatus();
}

absl::Status ValidatePolicy(const v1::PolicyEntry& p,
                            const FleetStateOptions& opt, int64_t now_ms) {
  absl::StatusOr<std::string> norm = NormalizePolicySubject(p.subject());
  if (!norm.ok()) return norm.status();
  if (*norm != p.subject()) {
    return Bad(fmt::format("policy: subject \"{}\" not normalised",
                           p.subject().substr(0, 64)));
  }
  if (!ValidToken(p.author_node())) return Bad("policy: bad author node");
  if (p.hlc().node_id() != p.author_node()) {
    return Bad("policy: hlc node is not the author");
  }
  if (p.version() == 0) return Bad("policy: version 0");
  if (AbsurdTime(p.hlc().wall_ms(), now_ms, opt) ||
      AbsurdTime(p.created_unix_ms(), now_ms, opt) ||
      (p.expires_unix_ms() != 0 && p.expires_unix_ms() < kMinUnixMs)) {
    return Bad("policy: absurd time");
  }
  if (!ValidText(p.reason(), opt.max_field_bytes) ||
      !ValidText(p.rate_class(), kMaxRateClass)) {
    return Bad("policy: long or binary reason or rate class");
  }
  if (p.deleted()) return absl::OkStatus();
  if (!v1::PolicyAction_IsValid(p.action()) ||
      p.action() == v1::POLICY_ACTION_UNSPECIFIED) {
    return Bad("policy: no action");
  }
  if ((p.action() == v1::POLICY_ACTION_RATE_CLASS) == p.rate_class().empty()) {
    return Bad("policy: rate class with the wrong action");
  }
  return absl::OkStatus();
}

absl::Status ValidateEtrnRequest(const v1::EtrnRequest& r,
                                 const FleetStateOptions& opt, int64_t now_ms) {
  if (!ValidToken(r.id())) return Bad("etrn request: bad id");
  if (!ValidToken(r.domain())) return Bad("etrn request: bad domain");
  if (!ValidToken(r.origin_node())) return Bad("etrn request: bad origin");
  if (r.version() == 0) return Bad("etrn request: version 0");
  if (AbsurdTime(r.created_unix_ms(), now_ms, opt) ||
      r.expires_unix_ms() <= r.created_unix_ms() ||
      r.expires_unix_ms() - r.created_unix_ms() > opt.max_etrn_ttl_ms) {
    return Bad("etrn request: absurd time");
  }
  return absl::OkStatus();
}

absl::Status ValidateEtrnResult(const v1::EtrnResult& r,
                                const FleetStateOptions& opt, int64_t now_ms) {
  if (!ValidToken(r.request_id())) return Bad("etrn result: bad request id");
  if (!ValidToken(r.node_id())) return Bad("etrn result: bad node id");
  if (r.version() == 0) return Bad("etrn result: version 0");
  if (AbsurdTime(r.done_unix_ms(), now_ms, opt)) {
    return Bad("etrn result: absurd time");
  }
  if (r.code() < 0 || r.code() > 999 ||
      !ValidText(r.text(), opt.max_field_bytes)) {
    return Bad("etrn result: bad code or text");
  }
  return absl::OkStatus();
}

absl::Status ValidateNodeStatus(const v1::NodeStatus& s,
                                const FleetStateOptions& opt, int64_t now_ms,
                                bool local) {
  if (s.ByteSizeLong() > opt.max_status_bytes) {
    return absl::ResourceExhaustedError(
        StrCat("node status: larger than ", opt.max_status_bytes, " bytes"));
  }
  if (!local) {
    if (!ValidToken(s.node_id())) return Bad("node status: bad node id");
    if (s.hlc().node_id() != s.node_id()) {
      return Bad("node status: hlc node is not the origin");
    }
    if (s.version() == 0) return Bad("node status: version 0");
    if (AbsurdTime(s.hlc().wall_ms(), now_ms, opt)) {
      return Bad("node status: absurd time");
    }
  }
  if (!ValidText(s.zm_version(), kMaxRateClass) ||
      !ValidText(s.admin_url(), opt.max_field_bytes) ||
      !ValidText(s.hostname(), 255)) {
    return Bad("node status: long or binary version, URL or host name");
  }
  const v1::NodeHistory& h = s.history();
  const int n = h.received_size();
  if (n > 60 || h.delivered_size() != n || h.deferred_size() != n ||
      h.bounced_size() != n || h.rejected_policy_size() != n ||
      h.rejected_rate_size() != n) {
    return Bad("node status: history series of unequal or excess length");
  }
  if (s.queue().top_destinations_size() > 10) {
    return Bad("node status: more than 10 top destinations");
  }
  for (const v1::QueueDestination& d : s.queue().top_destinations()) {
    if (!ValidText(d.channel(), 64) || !ValidText(d.host(), 255)) {
      return Bad("node status: bad destination");
    }
  }
  return absl::OkStatus();
}

}  // namespace internal
}  // namespace zm::cluster
