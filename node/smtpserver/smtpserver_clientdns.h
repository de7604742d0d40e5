// What DNS says about a connecting client: its reverse name (PTR, then
// forward confirmation: the name's A/AAAA records must include the
// address) and whether DNS blocklists (DNSBL) list its address.
//
//   ClientDnsQuery q{.ip = "192.0.2.7", .reverse = true,
//                    .dnsbl_zones = {"zen.spamhaus.org"}};
//   ClientDns d = LookUpClient(resolver, q);   // blocks: run it off the
//   d.name          // "mx.example.org", or "" (unknown)   I/O threads
//   d.dnsbl_zone    // "zen.spamhaus.org" when listed there
//
// The smtpserver runs LookUpClient on its own small lookup pool before the
// greeting and waits at most client-dns-timeout for it; a late answer is
// thrown away and the session goes on as "unknown" (smtpserver_conn.cc).
// Thread-safe (the Resolver is).
#ifndef ZM_SMTPSERVER_SMTPSERVER_CLIENTDNS_H_
#define ZM_SMTPSERVER_SMTPSERVER_CLIENTDNS_H_

#include <string>
#include <string_view>
#include <vector>

#include "node/smtpserver/smtpserver_config.h"
#include "node/smtpserver/smtpserver_policy.h"

namespace zm::dns {
class Resolver;
}

namespace zm::smtpserver {

struct ClientDnsQuery {
  std::string ip;
  bool reverse = true;                   // look up the reverse name
  std::vector<std::string> dnsbl_zones;  // in order; first listing wins
};

struct ClientDns {
  std::string name;  // forward-confirmed reverse name; "" = unknown
  std::string ptr;   // the first PTR answer, confirmed or not (for the log)
  std::string dnsbl_zone;  // the first zone listing the address; "" = none
  std::string dnsbl_text;  // its TXT record (or a default text)
};

ClientDns LookUpClient(dns::Resolver& resolver, const ClientDnsQuery& query);

// The name to look up in `zone` for `ip`: reversed octets for IPv4
// ("7.2.0.192.zone"), reversed nibbles for IPv6; "" for a bad address.
std::string DnsblName(std::string_view ip, std::string_view zone);

// The DNSBL zones a client's policy asks for: those of test-dns-rbl and
// rcpt-dns-rbl ("+" = dnsbl-zones of smtpserver.conf, "-" = none),
// without repeats.
std::vector<std::string> DnsblZonesFor(const PolicyAttrs& client,
                                       const ServerConfig& config);

// The zones one attribute value names ("+", "-", "z1:z2").
std::vector<std::string> ZonesOf(std::string_view value,
                                 const ServerConfig& config);

}  // namespace zm::smtpserver

#endif  // ZM_SMTPSERVER_SMTPSERVER_CLIENTDNS_H_
