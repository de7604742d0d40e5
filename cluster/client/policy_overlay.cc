// The policy overlay's subjects and lookups.
#include "cluster/client/policy_overlay.h"

#include <arpa/inet.h>

#include <cctype>
#include <cstring>

#include "node/common/strings.h"

namespace zm::cluster {
namespace {

struct ParsedIp {
  bool v6 = false;
  std::array<unsigned char, 16> addr{};
};

// IPv4 or IPv6 text; an IPv4-mapped IPv6 address is its IPv4.
std::optional<ParsedIp> ParseIp(std::string_view text) {
  if (text.empty() || text.size() > 45) return std::nullopt;
  std::string t(text);
  ParsedIp ip;
  if (::inet_pton(AF_INET, t.c_str(), ip.addr.data()) == 1) return ip;
  if (::inet_pton(AF_INET6, t.c_str(), ip.addr.data()) != 1) {
    return std::nullopt;
  }
  static constexpr unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0,
                                                0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(ip.addr.data(), kMapped, 12) == 0) {
    std::memmove(ip.addr.data(), ip.addr.data() + 12, 4);
    std::memset(ip.addr.data() + 4, 0, 12);
    return ip;
  }
  ip.v6 = true;
  return ip;
}

std::string IpText(const ParsedIp& ip) {
  char buf[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(ip.v6 ? AF_INET6 : AF_INET, ip.addr.data(), buf, sizeof buf);
  return buf;
}

bool PrefixMatches(const std::array<unsigned char, 16>& net,
                   const std::array<unsigned char, 16>& addr, int len) {
  int full = len / 8;
  if (std::memcmp(net.data(), addr.data(), full) != 0) return false;
  int rest = len % 8;
  if (rest == 0) return true;
  unsigned char mask = static_cast<unsigned char>(0xff << (8 - rest));
  return (net[full] & mask) == (addr[full] & mask);
}

bool HostBitsClear(const std::array<unsigned char, 16>& a, int len,
                   int bits) {
  for (int i = len; i < bits; ++i) {
    if (a[i / 8] & (0x80 >> (i % 8))) return false;
  }
  return true;
}

void ClearHostBits(std::array<unsigned char, 16>* a, int len, int bits) {
  for (int i = len; i < bits; ++i) {
    (*a)[i / 8] &= static_cast<unsigned char>(~(0x80 >> (i % 8)));
  }
}

// Letters, digits, '-' inside labels of 1 to 63; 253 at most.
bool ValidDomain(std::string_view d) {
  if (d.empty() || d.size() > 253) return false;
  for (std::string_view label : Split(d, '.')) {
    if (label.empty() || label.size() > 63) return false;
    if (label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') {
        return false;
      }
    }
  }
  return true;
}

absl::Status Bad(std::string_view text, std::string_view why) {
  return absl::InvalidArgumentError(
      StrCat("'", text, "' is not a policy subject: ", why));
}

}  // namespace

absl::StatusOr<Subject> ParseSubject(std::string_view raw) {
  std::string_view text = Trim(raw);
  if (text.empty()) {
    return Bad(raw, "empty (want an IP address, CIDR, domain or address)");
  }
  Subject s;
  if (auto at = text.rfind('@'); at != std::string_view::npos) {
    std::string_view local = text.substr(0, at);
    std::string domain = ToLower(text.substr(at + 1));
    if (local.empty()) return Bad(raw, "empty local part before '@'");
    if (local.size() > 64) return Bad(raw, "local part longer than 64");
    for (char c : local) {
      auto u = static_cast<unsigned char>(c);
      if (u <= ' ' || u >= 0x7f || c == '<' || c == '>' || c == '@' ||
          c == ',' || c == '"' || c == '\\') {
        return Bad(raw, "unusual character in the local part");
      }
    }
    if (!ValidDomain(domain)) return Bad(raw, "bad domain after '@'");
    s.kind = SubjectKind::kMailbox;
    s.text = StrCat(ToLower(local), "@", domain);
    return s;
  }
  if (auto slash = text.find('/'); slash != std::string_view::npos) {
    auto ip = ParseIp(text.substr(0, slash));
    if (!ip) return Bad(raw, "bad address before '/'");
    int bits = ip->v6 ? 128 : 32;
    auto len = ParseInt(text.substr(slash + 1));
    if (!len || *len < 0 || *len > bits) {
      return Bad(raw, StrCat("prefix length must be 0 to ", bits));
    }
    int n = static_cast<int>(*len);
    if (!HostBitsClear(ip->addr, n, bits)) {
      ParsedIp net = *ip;
      ClearHostBits(&net.addr, n, bits);
      return Bad(raw, StrCat("host bits set (the network is ", IpText(net),
                             "/", n, ")"));
    }
    if (n == bits) {
      s.kind = ip->v6 ? SubjectKind::kAddress6 : SubjectKind::kAddress4;
      s.text = IpText(*ip);
    } else {
      s.kind = ip->v6 ? SubjectKind::kNetwork6 : SubjectKind::kNetwork4;
      s.text = StrCat(IpText(*ip), "/", n);
    }
    return s;
  }
  if (auto ip = ParseIp(text)) {
    s.kind = ip->v6 ? SubjectKind::kAddress6 : SubjectKind::kAddress4;
    s.text = IpText(*ip);
    return s;
  }
  std::string d = ToLower(text);
  bool sub = d.front() == '.';
  if (d.back() == '.') d.pop_back();  // absolute form
  if (!ValidDomain(sub ? std::string_view(d).substr(1) : d)) {
    return Bad(raw, "not an IP address, CIDR, domain or mail address");
  }
  s.kind = sub ? SubjectKind::kSubdomains : SubjectKind::kDomain;
  s.text = std::move(d);
  return s;
}

std::optional<v1::PolicyAction> ParsePolicyAction(std::string_view name) {
  std::string n = ToLower(name);
  if (n == "reject") return v1::POLICY_ACTION_REJECT;
  if (n == "defer") return v1::POLICY_ACTION_DEFER;
  if (n == "freeze") return v1::POLICY_ACTION_FREEZE;
  if (n == "allow") return v1::POLICY_ACTION_ALLOW;
  if (n == "rate-class" || n == "rate_class" || n == "rateclass") {
    return v1::POLICY_ACTION_RATE_CLASS;
  }
  return std::nullopt;
}

std::string_view PolicyActionName(v1::PolicyAction action) {
  switch (action) {
    case v1::POLICY_ACTION_REJECT:
      return "reject";
    case v1::POLICY_ACTION_DEFER:
      return "defer";
    case v1::POLICY_ACTION_FREEZE:
      return "freeze";
    case v1::POLICY_ACTION_ALLOW:
      return "allow";
    case v1::POLICY_ACTION_RATE_CLASS:
      return "rate-class";
    default:
      return "unspecified";
  }
}

// ---- PolicyOverlay ------------------------------------------------------

void PolicyOverlay::Put(const v1::PolicyEntry& e) {
  absl::StatusOr<Subject> s = ParseSubject(e.subject());
  if (!s.ok()) return;
  if (e.deleted()) {
    nets_.erase(s->text);
    names_.erase(s->text);
    return;
  }
  if (s->kind == SubjectKind::kNetwork4 || s->kind == SubjectKind::kNetwork6) {
    std::string_view t = s->text;
    auto slash = t.find('/');
    std::optional<ParsedIp> ip = ParseIp(t.substr(0, slash));
    Net n;
    n.v6 = ip->v6;
    n.addr = ip->addr;
    n.len = static_cast<int>(*ParseInt(t.substr(slash + 1)));
    nets_[s->text] = {n, e};
  } else {
    names_[s->text] = e;
  }
}

void PolicyOverlay::Apply(const v1::PolicyUpdate& update) {
  absl::MutexLock lock(&mu_);
  if (update.snapshot()) {
    nets_.clear();
    names_.clear();
  }
  for (const v1::PolicyEntry& e : update.entries()) Put(e);
}

std::optional<v1::PolicyEntry> PolicyOverlay::ForIp(std::string_view text,
                                                    int64_t now_ms) const {
  std::optional<ParsedIp> ip = ParseIp(text);
  if (!ip) return std::nullopt;
  absl::ReaderMutexLock lock(&mu_);
  if (!names_.empty()) {
    auto it = names_.find(IpText(*ip));
    if (it != names_.end() && Live(it->second, now_ms)) return it->second;
  }
  const v1::PolicyEntry* best = nullptr;
  int best_len = -1;
  for (const auto& [subject, ne] : nets_) {
    const Net& n = ne.first;
    if (n.v6 != ip->v6 || n.len <= best_len) continue;
    if (!PrefixMatches(n.addr, ip->addr, n.len) || !Live(ne.second, now_ms)) {
      continue;
    }
    best = &ne.second;
    best_len = n.len;
  }
  if (best == nullptr) return std::nullopt;
  return *best;
}

std::optional<v1::PolicyEntry> PolicyOverlay::ForAddress(
    std::string_view address, int64_t now_ms) const {
  std::string a = ToLower(address);
  std::string_view domain = a;
  absl::ReaderMutexLock lock(&mu_);
  if (names_.empty()) return std::nullopt;
  auto find = [&](const std::string& key) -> const v1::PolicyEntry* {
    auto it = names_.find(key);
    return it != names_.end() && Live(it->second, now_ms) ? &it->second
                                                          : nullptr;
  };
  if (auto at = a.rfind('@'); at != std::string::npos) {
    if (const v1::PolicyEntry* e = find(a)) return *e;
    domain = std::string_view(a).substr(at + 1);
  }
  if (domain.empty()) return std::nullopt;
  if (const v1::PolicyEntry* e = find(std::string(domain))) return *e;
  // .a.example.com, .example.com, .com
  for (std::string_view d = domain; !d.empty();) {
    if (const v1::PolicyEntry* e = find(StrCat(".", d))) return *e;
    auto dot = d.find('.');
    if (dot == std::string_view::npos) break;
    d = d.substr(dot + 1);
  }
  return std::nullopt;
}

size_t PolicyOverlay::size() const {
  absl::ReaderMutexLock lock(&mu_);
  return nets_.size() + names_.size();
}

}  // namespace zm::cluster
