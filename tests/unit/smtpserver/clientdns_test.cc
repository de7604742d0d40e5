// Client DNS (smtpserver_clientdns.h) against a scripted resolver.
#include "node/smtpserver/smtpserver_clientdns.h"

#include <gtest/gtest.h>

#include <map>

#include "node/dns/resolver.h"

namespace zm::smtpserver {
namespace {

// Answers from a table: "PTR ip", "A name", "AAAA name", "TXT name".
class FakeResolver : public dns::Resolver {
 public:
  std::map<std::string, std::vector<std::string>> table;
  std::vector<std::string> asked;

  absl::StatusOr<std::vector<std::string>> Answer(const std::string& q) {
    asked.push_back(q);
    auto it = table.find(q);
    if (it == table.end()) return absl::NotFoundError("NXDOMAIN");
    return it->second;
  }
  absl::StatusOr<std::vector<dns::MxRecord>> LookupMx(
      std::string_view) override {
    return absl::NotFoundError("NXDOMAIN");
  }
  absl::StatusOr<std::vector<std::string>> LookupA(
      std::string_view h) override {
    return Answer("A " + std::string(h));
  }
  absl::StatusOr<std::vector<std::string>> LookupAaaa(
      std::string_view h) override {
    return Answer("AAAA " + std::string(h));
  }
  absl::StatusOr<std::vector<std::string>> LookupPtr(
      std::string_view ip) override {
    return Answer("PTR " + std::string(ip));
  }
  absl::StatusOr<std::vector<std::string>> LookupTxt(
      std::string_view n) override {
    return Answer("TXT " + std::string(n));
  }
  absl::StatusOr<std::vector<dns::SrvRecord>> LookupSrv(
      std::string_view) override {
    return absl::NotFoundError("NXDOMAIN");
  }
};

ClientDnsQuery Query(std::string ip, bool reverse = true) {
  ClientDnsQuery q;
  q.ip = std::move(ip);
  q.reverse = reverse;
  return q;
}

using Attrs = std::vector<std::pair<std::string, std::string>>;

TEST(ClientDns, DnsblNames) {
  EXPECT_EQ(DnsblName("192.0.2.7", "zen.example"), "7.2.0.192.zen.example");
  EXPECT_EQ(DnsblName("2001:db8::1", "bl.test"),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2."
            "bl.test");
  EXPECT_EQ(DnsblName("nonsense", "bl.test"), "");
}

TEST(ClientDns, ReverseNameNeedsForwardConfirmation) {
  FakeResolver r;
  r.table["PTR 192.0.2.7"] = {"Mail.Example.ORG"};
  r.table["A mail.example.org"] = {"192.0.2.9", "192.0.2.7"};
  r.table["PTR 192.0.2.8"] = {"liar.example"};
  r.table["A liar.example"] = {"198.51.100.1"};
  r.table["PTR 2001:db8::5"] = {"six.example"};
  r.table["AAAA six.example"] = {"2001:db8:0:0::5"};
  EXPECT_EQ(LookUpClient(r, Query("192.0.2.7")).name, "mail.example.org");
  ClientDns liar = LookUpClient(r, Query("192.0.2.8"));
  EXPECT_EQ(liar.name, "");
  EXPECT_EQ(liar.ptr, "liar.example");
  EXPECT_EQ(LookUpClient(r, Query("2001:db8::5")).name, "six.example");
  EXPECT_EQ(LookUpClient(r, Query("192.0.2.99")).name, "");
  r.asked.clear();
  EXPECT_EQ(LookUpClient(r, Query("192.0.2.7", false)).name, "");
  EXPECT_TRUE(r.asked.empty());
}

TEST(ClientDns, DnsblListingsAndTheirText) {
  FakeResolver r;
  r.table["A 7.2.0.192.two.test"] = {"127.0.0.2"};
  r.table["TXT 7.2.0.192.two.test"] = {"listed, see two.test"};
  r.table["A 7.2.0.192.err.test"] = {"127.255.255.254"};  // an error code
  r.table["A 7.2.0.192.wild.test"] = {"192.0.2.1"};       // not a listing
  ClientDnsQuery q = Query("192.0.2.7", false);
  q.dnsbl_zones = {"none.test", "err.test", "wild.test", "two.test"};
  ClientDns d = LookUpClient(r, q);
  EXPECT_EQ(d.dnsbl_zone, "two.test");
  EXPECT_EQ(d.dnsbl_text, "listed, see two.test");
  q.dnsbl_zones = {"none.test"};
  EXPECT_EQ(LookUpClient(r, q).dnsbl_zone, "");
}

TEST(ClientDns, ZonesFromPolicyAttributes) {
  ServerConfig cfg;
  cfg.dnsbl_zones = {"default.test"};
  PolicyAttrs a(Attrs{{"test-dns-rbl", "+"},
                      {"rcpt-dns-rbl", "x.test:default.test"}});
  EXPECT_EQ(DnsblZonesFor(a, cfg),
            (std::vector<std::string>{"default.test", "x.test"}));
  EXPECT_TRUE(DnsblZonesFor(PolicyAttrs(Attrs{{"test-dns-rbl", "-"}}), cfg).empty());
  EXPECT_TRUE(DnsblZonesFor(PolicyAttrs(), cfg).empty());
}

}  // namespace
}  // namespace zm::smtpserver
