#include "node/smtpserver/smtpserver_clientdns.h"

#include <algorithm>
#include <array>

#include "node/common/strings.h"
#include "node/dns/resolver.h"

namespace zm::smtpserver {
namespace {

// At most this many PTR names are tried for forward confirmation.
constexpr size_t kMaxPtrNames = 3;

bool SameAddress(std::string_view a, std::string_view b) {
  bool v6a = false, v6b = false;
  std::array<unsigned char, 16> x, y;
  return AddressBytes(a, &v6a, &x) && AddressBytes(b, &v6b, &y) && v6a == v6b &&
         x == y;
}

bool ConfirmForward(dns::Resolver& r, const std::string& name,
                    const std::string& ip) {
  bool v6 = ip.find(':') != std::string::npos;
  auto addrs = v6 ? r.LookupAaaa(name) : r.LookupA(name);
  if (!addrs.ok()) return false;
  for (const std::string& a : *addrs) {
    if (SameAddress(a, ip)) return true;
  }
  return false;
}

}  // namespace

std::string DnsblName(std::string_view ip, std::string_view zone) {
  auto labels = dns::ReversedAddress(ip);
  return labels.ok() ? StrCat(*labels, ".", zone) : std::string();
}

std::vector<std::string> ZonesOf(std::string_view value,
                                 const ServerConfig& config) {
  if (value == "-" || value.empty()) return {};
  if (value == "+") return config.dnsbl_zones;
  auto z = ParseDnsblZones(value);
  return z ? *z : std::vector<std::string>{};
}

std::vector<std::string> DnsblZonesFor(const PolicyAttrs& client,
                                       const ServerConfig& config) {
  std::vector<std::string> out;
  for (std::string_view attr : {"test-dns-rbl", "rcpt-dns-rbl"}) {
    auto v = client.Get(attr);
    if (!v) continue;
    for (std::string& z : ZonesOf(*v, config)) {
      if (std::find(out.begin(), out.end(), z) == out.end()) {
        out.push_back(std::move(z));
      }
    }
  }
  return out;
}

ClientDns LookUpClient(dns::Resolver& r, const ClientDnsQuery& q) {
  ClientDns d;
  if (q.reverse) {
    auto names = r.LookupPtr(q.ip);
    if (names.ok() && !names->empty()) {
      d.ptr = ToLower(names->front());
      for (size_t i = 0; i < names->size() && i < kMaxPtrNames; ++i) {
        std::string n = ToLower(StripTrailingDots((*names)[i]));
        if (!n.empty() && ConfirmForward(r, n, q.ip)) {
          d.name = n;
          break;
        }
      }
    }
  }
  for (const std::string& zone : q.dnsbl_zones) {
    std::string name = DnsblName(q.ip, zone);
    if (name.empty()) break;
    auto a = r.LookupA(name);
    if (!a.ok() || a->empty()) continue;
    // Listings are answered in 127.0.0.0/8; anything else (a wildcard,
    // an error code such as Spamhaus' 127.255.255.x) is not a listing.
    bool listed = false;
    for (const std::string& addr : *a) {
      if (addr.starts_with("127.") && !addr.starts_with("127.255.255.")) {
        listed = true;
      }
    }
    if (!listed) continue;
    d.dnsbl_zone = zone;
    auto txt = r.LookupTxt(name);
    d.dnsbl_text = txt.ok() && !txt->empty()
                       ? txt->front()
                       : StrCat("listed in ", zone);
    break;
  }
  return d;
}

}  // namespace zm::smtpserver
