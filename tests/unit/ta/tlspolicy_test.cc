// zm_tlspolicy: MTA-STS records, policies, MX patterns and the cache; DANE
// record usability; TLS reporting aggregation; the smtp-tls.conf settings.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/ta/smtp/smtp.h"
#include "node/tlspolicy/dane.h"
#include "node/tlspolicy/mtasts.h"
#include "node/tlspolicy/tlsrpt.h"

namespace zm::tlspolicy {
namespace {

class TempDir {
 public:
  TempDir() {
    char t[] = "/tmp/zm-tlspolicy-XXXXXX";
    path_ = ::mkdtemp(t);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(StsRecord, OneRecordGivesItsId) {
  auto id = ParseStsRecords({"v=spf1 -all", "v=STSv1; id=20160831085700Z;"});
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, "20160831085700Z");
}

TEST(StsRecord, NoneOrTwoMeanNoPolicyAndBadIdIsAnError) {
  EXPECT_TRUE(absl::IsNotFound(ParseStsRecords({"v=spf1 -all"}).status()));
  EXPECT_TRUE(absl::IsNotFound(
      ParseStsRecords({"v=STSv1; id=1", "v=STSv1; id=2"}).status()));
  EXPECT_TRUE(absl::IsNotFound(ParseStsRecords({"v=STSv10; id=1"}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      ParseStsRecords({"v=STSv1; id=a-b"}).status()));
  EXPECT_TRUE(
      absl::IsInvalidArgument(ParseStsRecords({"v=STSv1;"}).status()));
}

TEST(StsPolicy, ParsesTheRfcExample) {
  auto p = ParseStsPolicy(
      "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n"
      "mx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->mode, StsMode::kEnforce);
  EXPECT_EQ(p->max_age, 604800);
  ASSERT_EQ(p->mx.size(), 3u);
  EXPECT_EQ(p->mx[1], "*.example.net");
  EXPECT_EQ(p->Lines().front(), "version: STSv1");
}

TEST(StsPolicy, RefusesBadPoliciesAndCapsMaxAge) {
  EXPECT_FALSE(ParseStsPolicy("mode: enforce\nmx: a\nmax_age: 1\n").ok());
  EXPECT_FALSE(
      ParseStsPolicy("version: STSv1\nmode: strict\nmx: a\nmax_age: 1\n")
          .ok());
  EXPECT_FALSE(
      ParseStsPolicy("version: STSv1\nmode: enforce\nmax_age: 1\n").ok());
  EXPECT_FALSE(
      ParseStsPolicy("version: STSv1\nmode: enforce\nmx: a\nmax_age: x\n")
          .ok());
  auto none = ParseStsPolicy("version: STSv1\nmode: none\nmax_age: 9\n");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->mode, StsMode::kNone);
  auto big = ParseStsPolicy(
      "version: STSv1\nmode: testing\nmx: a\nmax_age: 99999999999\n"
      "future: ignored\n");
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_EQ(big->max_age, kMaxStsAge);
}

TEST(StsMx, WildcardsCoverOneLabel) {
  std::vector<std::string> p{"mail.example.com", "*.example.net"};
  EXPECT_TRUE(StsMxMatches(p, "mail.example.com"));
  EXPECT_TRUE(StsMxMatches(p, "MAIL.Example.com."));
  EXPECT_TRUE(StsMxMatches(p, "mx1.example.net"));
  EXPECT_FALSE(StsMxMatches(p, "example.net"));
  EXPECT_FALSE(StsMxMatches(p, "a.b.example.net"));
  EXPECT_FALSE(StsMxMatches(p, "mail.example.org"));
  EXPECT_FALSE(StsMxMatches(p, "xmail.example.com"));
}

TEST(StsCache, KeepsPoliciesAndRefusesStrangeNames) {
  TempDir dir;
  StsCache cache(dir.path() + "/sts");
  EXPECT_FALSE(cache.Get("example.net").has_value());
  auto p = ParseStsPolicy("version: STSv1\nmode: testing\nmx: *.example.net\n"
                          "max_age: 100\n");
  ASSERT_TRUE(p.ok());
  p->id = "abc1";
  p->fetched = 1000;
  ASSERT_TRUE(cache.Put("Example.NET.", *p).ok());
  auto got = cache.Get("example.net");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->id, "abc1");
  EXPECT_EQ(got->fetched, 1000);
  EXPECT_EQ(got->mode, StsMode::kTesting);
  EXPECT_FALSE(got->Expired(1099));
  EXPECT_TRUE(got->Expired(1100));
  EXPECT_FALSE(cache.Put("../etc", *p).ok());
  EXPECT_FALSE(cache.Get("../etc").has_value());
}

TEST(StsFetch, NoServerIsUnavailable) {
  FetchOptions o;
  o.port = 1;  // nothing listens there
  o.timeout_ms = 2000;
  auto r = FetchStsPolicy("example.test", {"127.0.0.1"}, o);
  EXPECT_TRUE(absl::IsUnavailable(r.status())) << r.status();
  EXPECT_TRUE(absl::IsUnavailable(FetchStsPolicy("x.test", {}, o).status()));
}

TEST(Dane, UsableRecordsForSmtp) {
  auto rec = [](int u, int s, int m, size_t len) {
    std::string r{static_cast<char>(u), static_cast<char>(s),
                  static_cast<char>(m)};
    return r + std::string(len, '\x01');
  };
  std::vector<std::string> rdata{
      rec(3, 1, 1, 32),  // DANE-EE SPKI SHA-256
      rec(2, 0, 2, 64),  // DANE-TA cert SHA-512
      rec(2, 0, 0, 300),  // DANE-TA full cert
      rec(1, 1, 1, 32),  // PKIX-EE: unusable for SMTP
      rec(0, 0, 1, 32),  // PKIX-TA: unusable
      rec(3, 1, 1, 20),  // wrong digest length
      rec(3, 2, 1, 32),  // bad selector
      rec(3, 1, 3, 32),  // bad matching type
      "ab",              // too short
  };
  auto usable = UsableTlsa(rdata);
  ASSERT_EQ(usable.size(), 3u);
  EXPECT_EQ(usable[0].usage, 3);
  EXPECT_EQ(usable[1].mtype, 2);
  EXPECT_EQ(usable[2].data.size(), 300u);
  EXPECT_EQ(usable[0].Text().substr(0, 10), "3 1 1 0101");
  EXPECT_EQ(TlsaName("MX.Example.net.", 25), "_25._tcp.mx.example.net");
}

TEST(Tlsrpt, AggregatesADayPerPolicyDomain) {
  TempDir dir;
  TlsrptLog log(dir.path() + "/tlsrpt");
  const int64_t t = 1795000000;  // 2026-11-18
  std::string day = Day(t);
  EXPECT_EQ(day, "2026-11-18");
  TlsResult ok{"example.net", PolicyType::kSts,
               {"version: STSv1", "mode: enforce"}, "mx.example.net",
               "192.0.2.1", "", ""};
  TlsResult bad = ok;
  bad.result = "certificate-host-mismatch";
  bad.detail = "hostname\tmismatch";
  TlsResult other{"other.org", PolicyType::kTlsa, {"3 1 1 ab"}, "mx.other.org",
                  "192.0.2.2", "", ""};
  ASSERT_TRUE(log.Record(ok, t).ok());
  ASSERT_TRUE(log.Record(ok, t + 1).ok());
  ASSERT_TRUE(log.Record(bad, t + 2).ok());
  ASSERT_TRUE(log.Record(other, t).ok());
  auto reports = Aggregate(dir.path() + "/tlsrpt", day, "mx.test");
  ASSERT_TRUE(reports.ok()) << reports.status();
  ASSERT_EQ(reports->size(), 2u);
  const auto& r = (*reports)[0];
  EXPECT_EQ(r["date-range"]["start-datetime"], "2026-11-18T00:00:00Z");
  const auto& pol = r["policies"][0];
  EXPECT_EQ(pol["policy"]["policy-type"], "sts");
  EXPECT_EQ(pol["policy"]["policy-domain"], "example.net");
  EXPECT_EQ(pol["policy"]["policy-string"][1], "mode: enforce");
  EXPECT_EQ(pol["summary"]["total-successful-session-count"], 2);
  EXPECT_EQ(pol["summary"]["total-failure-session-count"], 1);
  EXPECT_EQ(pol["failure-details"][0]["result-type"],
            "certificate-host-mismatch");
  EXPECT_EQ(pol["failure-details"][0]["additional-information"],
            "hostname mismatch");
  EXPECT_EQ((*reports)[1]["policies"][0]["policy"]["policy-type"], "tlsa");
  auto one = Aggregate(dir.path() + "/tlsrpt", day, "mx.test", "other.org");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->size(), 1u);
  EXPECT_TRUE(absl::IsNotFound(
      Aggregate(dir.path() + "/tlsrpt", "2026-11-19", "mx.test").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      Aggregate(dir.path() + "/tlsrpt", "../../etc", "x").status()));
}

TEST(SmtpTlsConf, SettingsAndExplicitRules) {
  auto p = smtp::TlsPolicies::Parse(
      "dane=no\nmta-sts-ca=ca.pem\nmta-sts-port=8443\ntlsrpt=off\n"
      "*  encrypt\n.bank.example verify\npartner.example none\n",
      "smtp-tls.conf");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_FALSE(p->settings().dane);
  EXPECT_TRUE(p->settings().mta_sts);
  EXPECT_FALSE(p->settings().tlsrpt);
  EXPECT_EQ(p->settings().mta_sts_port, 8443);
  EXPECT_FALSE(p->Explicit("example.org").has_value());
  EXPECT_EQ(p->For("example.org").level, smtp::TlsPolicy::Level::kEncrypt);
  ASSERT_TRUE(p->Explicit("mx.bank.example").has_value());
  EXPECT_EQ(p->Explicit("partner.example")->level,
            smtp::TlsPolicy::Level::kNone);
  NodeDir node{"/srv/node"};
  p->ResolveFiles(node);
  EXPECT_EQ(p->settings().mta_sts_ca, "/srv/node/etc/ca.pem");

  auto bad = smtp::TlsPolicies::Parse("x\ndane=maybe\n", "f");
  EXPECT_EQ(Message(bad.status()).substr(0, 4), "f:1:");
  bad = smtp::TlsPolicies::Parse("dane=maybe\n", "f");
  EXPECT_EQ(Message(bad.status()), "f:1: dane= needs yes or no, not 'maybe'");
  EXPECT_FALSE(smtp::TlsPolicies::Parse("color=blue\n", "f").ok());
  EXPECT_FALSE(smtp::TlsPolicies::Parse("mta-sts-port=0\n", "f").ok());
}

}  // namespace
}  // namespace zm::tlspolicy
