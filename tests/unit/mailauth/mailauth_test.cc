#include "node/mailauth/mailauth.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <utility>

#include "absl/status/status.h"
#include "node/common/fs.h"
#include "node/dns/resolver.h"

namespace zm::mailauth {
namespace {

// An in-memory zone: names not listed are NXDOMAIN, "down.test" names
// time out.
class ZoneResolver : public dns::Resolver {
 public:
  std::map<std::string, std::vector<std::string>> txt, a;
  std::map<std::string, std::vector<dns::MxRecord>> mx;
  int txt_queries = 0;

  template <typename T>
  absl::StatusOr<T> Find(const std::map<std::string, T>& m,
                         std::string_view name) {
    std::string n(name);
    if (n.size() >= 9 && n.substr(n.size() - 9) == "down.test") {
      return absl::UnavailableError("timeout");
    }
    auto it = m.find(n);
    if (it == m.end()) return absl::NotFoundError("NXDOMAIN");
    return it->second;
  }
  absl::StatusOr<std::vector<dns::MxRecord>> LookupMx(
      std::string_view d) override {
    return Find(mx, d);
  }
  absl::StatusOr<std::vector<std::string>> LookupA(
      std::string_view d) override {
    return Find(a, d);
  }
  absl::StatusOr<std::vector<std::string>> LookupAaaa(
      std::string_view d) override {
    return Find(std::map<std::string, std::vector<std::string>>{}, d);
  }
  absl::StatusOr<std::vector<std::string>> LookupPtr(
      std::string_view) override {
    return absl::NotFoundError("NXDOMAIN");
  }
  absl::StatusOr<std::vector<std::string>> LookupTxt(
      std::string_view d) override {
    ++txt_queries;
    return Find(txt, d);
  }
  absl::StatusOr<std::vector<dns::SrvRecord>> LookupSrv(
      std::string_view) override {
    return absl::NotFoundError("NXDOMAIN");
  }
};

SpfQuery Query(std::string sender, std::string ip = "192.0.2.10") {
  return {.client_ip = std::move(ip),
          .helo = "client.example.org",
          .sender = std::move(sender),
          .receiver = "mx.example.net"};
}

TEST(Spf, ResultsFollowTheRecord) {
  ZoneResolver dns;
  dns.txt["example.org"] = {"v=spf1 ip4:192.0.2.0/24 a:mail.example.org -all"};
  dns.a["mail.example.org"] = {"198.51.100.7"};
  dns.txt["soft.example"] = {"v=spf1 ~all"};
  dns.txt["redirect.example"] = {"v=spf1 redirect=example.org"};
  dns.txt["client.example.org"] = {"v=spf1 ip4:192.0.2.10 -all"};

  EXPECT_EQ(CheckSpf(dns, Query("a@example.org")).result, SpfResult::kPass);
  EXPECT_EQ(CheckSpf(dns, Query("a@example.org", "198.51.100.7")).result,
            SpfResult::kPass);
  SpfOutcome fail = CheckSpf(dns, Query("a@example.org", "203.0.113.5"));
  EXPECT_EQ(fail.result, SpfResult::kFail);
  EXPECT_EQ(fail.identity, "mailfrom");
  EXPECT_EQ(fail.checked, "a@example.org");
  EXPECT_NE(fail.received_spf.find("fail"), std::string::npos);
  EXPECT_EQ(CheckSpf(dns, Query("a@soft.example")).result,
            SpfResult::kSoftFail);
  EXPECT_EQ(CheckSpf(dns, Query("a@redirect.example", "203.0.113.5")).result,
            SpfResult::kFail);
  EXPECT_EQ(CheckSpf(dns, Query("a@nowhere.example")).result, SpfResult::kNone);
  SpfOutcome down = CheckSpf(dns, Query("a@down.test"));
  EXPECT_EQ(down.result, SpfResult::kTempError) << down.comment;

  // The null sender: the HELO name is the identity.
  SpfOutcome helo = CheckSpf(dns, Query(""));
  EXPECT_EQ(helo.identity, "helo");
  EXPECT_EQ(helo.checked, "client.example.org");
  EXPECT_EQ(helo.result, SpfResult::kPass);
}

TEST(Spf, ThresholdOrder) {
  EXPECT_TRUE(AtOrBelow(SpfResult::kFail, SpfResult::kFail));
  EXPECT_FALSE(AtOrBelow(SpfResult::kSoftFail, SpfResult::kFail));
  EXPECT_TRUE(AtOrBelow(SpfResult::kSoftFail, SpfResult::kSoftFail));
  EXPECT_TRUE(AtOrBelow(SpfResult::kPermError, SpfResult::kNone));
  EXPECT_FALSE(AtOrBelow(SpfResult::kPermError, SpfResult::kSoftFail));
  EXPECT_FALSE(AtOrBelow(SpfResult::kTempError, SpfResult::kPass));
  EXPECT_FALSE(AtOrBelow(SpfResult::kPass, SpfResult::kNeutral));
  EXPECT_EQ(ParseSpfResult("SoftFail"), SpfResult::kSoftFail);
  EXPECT_EQ(ParseSpfResult("maybe"), std::nullopt);
}

constexpr char kMessage[] =
    "From: Alice Example <alice@example.org>\n"
    "To: bob@example.net\n"
    "Subject: a test\n"
    "Date: Thu, 20 Nov 2025 23:05:19 +0100\n"
    "Message-ID: <1@example.org>\n"
    "\n"
    "Hello Bob,\n"
    "\n"
    "a line.\n";

class DkimTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = Dkim::Create(&dns_);
    ASSERT_TRUE(d.ok()) << d.status();
    dkim_ = std::move(*d);
  }
  // A fresh key for example.org published at `selector`.
  DkimKey Publish(const std::string& selector, bool ed25519) {
    auto k = GenerateKey(ed25519, 1024);
    EXPECT_TRUE(k.ok()) << k.status();
    dns_.txt[selector + "._domainkey.example.org"] = {k->txt_record};
    return {"example.org", selector,
            ed25519 ? "ed25519-sha256" : "rsa-sha256", k->private_pem};
  }
  std::string Signed(const DkimKey& key, const std::string& message) {
    auto h = dkim_->Sign(message, key, "T1");
    EXPECT_TRUE(h.ok()) << h.status();
    return h.ok() ? *h + message : message;
  }

  ZoneResolver dns_;
  std::unique_ptr<Dkim> dkim_;
};

TEST_F(DkimTest, SignedMessagesVerifyWithEitherAlgorithm) {
  for (bool ed : {false, true}) {
    DkimKey key = Publish(ed ? "ed" : "rsa", ed);
    std::string m = Signed(key, kMessage);
    EXPECT_EQ(m.rfind("DKIM-Signature: v=1; a=", 0), 0u) << m;
    EXPECT_NE(m.find("c=relaxed/relaxed"), std::string::npos);
    auto sigs = dkim_->Verify(m, "T1");
    ASSERT_EQ(sigs.size(), 1u);
    EXPECT_EQ(sigs[0].result, "pass") << sigs[0].reason;
    EXPECT_EQ(sigs[0].domain, "example.org");
    EXPECT_EQ(sigs[0].selector, key.selector);
    EXPECT_EQ(sigs[0].algorithm, key.algorithm);
    EXPECT_EQ(sigs[0].b_prefix.size(), 8u);
  }
}

TEST_F(DkimTest, EverySignatureGetsItsOwnResult) {
  DkimKey rsa = Publish("rsa", false);
  DkimKey ed = Publish("ed", true);
  std::string m = Signed(ed, Signed(rsa, kMessage));
  auto sigs = dkim_->Verify(m, "T2");
  ASSERT_EQ(sigs.size(), 2u);
  EXPECT_EQ(sigs[0].result, "pass");
  EXPECT_EQ(sigs[1].result, "pass");

  // A changed body breaks both; a key that is gone is a permerror.
  std::string changed = m;
  changed.replace(changed.find("a line."), 7, "b line.");
  for (const DkimSignature& s : dkim_->Verify(changed, "T3")) {
    EXPECT_EQ(s.result, "fail") << s.selector;
  }
  dns_.txt.erase("ed._domainkey.example.org");
  auto sigs2 = dkim_->Verify(m, "T4");
  ASSERT_EQ(sigs2.size(), 2u);
  EXPECT_EQ(sigs2[0].result == "pass" ? sigs2[1].result : sigs2[0].result,
            "permerror");
}

TEST_F(DkimTest, ChangedSignedHeaderFails) {
  DkimKey rsa = Publish("rsa", false);
  std::string m = Signed(rsa, kMessage);
  m.replace(m.find("Subject: a test"), 15, "Subject: b test");
  auto sigs = dkim_->Verify(m, "T5");
  ASSERT_EQ(sigs.size(), 1u);
  EXPECT_EQ(sigs[0].result, "fail");
  EXPECT_FALSE(sigs[0].reason.empty());
}

TEST_F(DkimTest, UnsignedMessageHasNoSignatures) {
  EXPECT_TRUE(dkim_->Verify(kMessage, "T6").empty());
}

TEST_F(DkimTest, KeyServerDownIsTempError) {
  DkimKey key = Publish("rsa", false);
  key.domain = "down.test";
  std::string m = Signed(key, kMessage);
  auto sigs = dkim_->Verify(m, "T7");
  ASSERT_EQ(sigs.size(), 1u) << m;
  EXPECT_EQ(sigs[0].result, "temperror");
}

TEST(DkimKeysTest, LoadsTheTableAndRefusesBadLines) {
  char tmpl[] = "/tmp/zm-dkimkeys-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  auto rsa = GenerateKey(false, 1024);
  auto ed = GenerateKey(true, 0);
  ASSERT_TRUE(rsa.ok() && ed.ok());
  ASSERT_TRUE(fs::WriteFileAtomically(dir, "rsa.pem", rsa->private_pem).ok());
  ASSERT_TRUE(fs::WriteFileAtomically(dir, "ed.pem", ed->private_pem).ok());
  std::string table = dir + "/dkim-keys";
  ASSERT_TRUE(fs::WriteFileAtomically(dir, "dkim-keys",
                                  "# domain selector key\n"
                                  "Example.ORG s1 rsa.pem\n"
                                  "example.net s2 " + dir + "/ed.pem\n")
                  .ok());
  auto keys = DkimKeys::Load(table);
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ(keys->size(), 2u);
  ASSERT_NE(keys->ForDomain("example.org"), nullptr);
  EXPECT_EQ(keys->ForDomain("example.org")->algorithm, "rsa-sha256");
  EXPECT_EQ(keys->ForDomain("example.net")->algorithm, "ed25519-sha256");
  EXPECT_EQ(keys->ForDomain("example.com"), nullptr);

  for (const char* bad : {"example.org s1\n", "example.org s1 missing.pem\n",
                          "example.org s1 rsa.pem ed25519-sha256\n",
                          "example.org s1 rsa.pem md5\n",
                          "example.org s1 rsa.pem\nexample.org s2 ed.pem\n"}) {
    ASSERT_TRUE(fs::WriteFileAtomically(dir, "dkim-keys", std::string("\n") + bad).ok());
    auto k = DkimKeys::Load(table);
    ASSERT_FALSE(k.ok()) << bad;
    EXPECT_NE(k.status().message().find("dkim-keys:"), std::string::npos)
        << k.status();
  }
  std::filesystem::remove_all(dir);
}

TEST(DkimKeysTest, GeneratedRecordsNameTheirKeyType) {
  auto rsa = GenerateKey(false, 2048);
  ASSERT_TRUE(rsa.ok());
  EXPECT_EQ(rsa->txt_record.rfind("v=DKIM1; k=rsa; p=MII", 0), 0u);
  EXPECT_NE(rsa->private_pem.find("BEGIN PRIVATE KEY"), std::string::npos);
  auto ed = GenerateKey(true, 0);
  ASSERT_TRUE(ed.ok());
  // 32 raw bytes: 44 base64 characters.
  EXPECT_EQ(ed->txt_record.size(), std::string("v=DKIM1; k=ed25519; p=").size() + 44);
  EXPECT_FALSE(GenerateKey(false, 512).ok());
}

TEST(FromDomainTest, SingleAuthorOnly) {
  EXPECT_EQ(FromDomain("From: a@Example.ORG\n\nx"), "example.org");
  EXPECT_EQ(FromDomain("From: \"Doe, J <x@evil.test>\" <j@example.org>\n\n"),
            "example.org");
  EXPECT_EQ(FromDomain("From: (comment <x@evil.test>) j@example.org\n\n"),
            "example.org");
  EXPECT_EQ(FromDomain("From: Alice\n <alice@example.org>\n\n"), "example.org");
  EXPECT_EQ(FromDomain("From: a@example.org, b@example.net\n\n"), "");
  EXPECT_EQ(FromDomain("From: a@example.org\nFrom: b@example.net\n\n"), "");
  EXPECT_EQ(FromDomain("To: a@example.org\n\n"), "");
  EXPECT_EQ(FromDomain("Subject: x\n\nFrom: a@example.org\n"), "");
}

class DmarcTest : public ::testing::Test {
 protected:
  SpfOutcome Spf(SpfResult r, std::string sender) {
    SpfOutcome s;
    s.result = r;
    s.identity = "mailfrom";
    s.checked = std::move(sender);
    return s;
  }
  DkimSignature Sig(std::string domain, std::string result) {
    DkimSignature s;
    s.domain = std::move(domain);
    s.selector = "s";
    s.result = std::move(result);
    return s;
  }
  ZoneResolver dns_;
};

TEST_F(DmarcTest, PolicyAndAlignment) {
  dns_.txt["_dmarc.example.org"] = {"v=DMARC1; p=reject"};
  dns_.txt["_dmarc.quarantine.example"] = {"v=DMARC1; p=quarantine; adkim=s"};
  dns_.txt["_dmarc.watch.example"] = {"v=DMARC1; p=none"};

  // Aligned SPF pass, or an aligned DKIM pass, is enough.
  auto pass = CheckDmarc(dns_, "example.org",
                         Spf(SpfResult::kPass, "a@example.org"), {});
  EXPECT_EQ(pass.result, "pass");
  EXPECT_EQ(pass.policy, "reject");
  EXPECT_EQ(CheckDmarc(dns_, "example.org",
                       Spf(SpfResult::kFail, "a@example.org"),
                       {Sig("example.org", "pass")})
                .result,
            "pass");
  // Relaxed alignment: a subdomain's pass counts.
  EXPECT_EQ(CheckDmarc(dns_, "example.org",
                       Spf(SpfResult::kPass, "a@bounce.example.org"), {})
                .result,
            "pass");
  // A pass for another domain does not.
  auto rej = CheckDmarc(dns_, "example.org",
                        Spf(SpfResult::kPass, "a@other.example"),
                        {Sig("other.example", "pass"), Sig("example.org", "fail")});
  EXPECT_EQ(rej.result, "fail");
  EXPECT_EQ(rej.policy, "reject");
  EXPECT_EQ(rej.record_domain, "example.org");

  // Strict DKIM alignment: a subdomain signature is not aligned.
  auto q = CheckDmarc(dns_, "quarantine.example", std::nullopt,
                      {Sig("mail.quarantine.example", "pass")});
  EXPECT_EQ(q.result, "fail");
  EXPECT_EQ(q.policy, "quarantine");
  auto none = CheckDmarc(dns_, "watch.example", std::nullopt, {});
  EXPECT_EQ(none.result, "fail");
  EXPECT_EQ(none.policy, "none");
}

// Relaxed alignment compares organizational domains: two names under
// the same public suffix ("test" by the implicit "*" rule, "co.uk" by the
// list) are not aligned, a subdomain of the From: domain is.
TEST_F(DmarcTest, RelaxedAlignmentStopsAtThePublicSuffix) {
  auto psl = PublicSuffixList::Parse("uk\nco.uk\n");
  DmarcOptions o;
  o.psl = &psl;
  dns_.txt["_dmarc.example.test"] = {"v=DMARC1; p=reject"};
  dns_.txt["_dmarc.example.co.uk"] = {"v=DMARC1; p=reject"};
  EXPECT_EQ(CheckDmarc(dns_, "example.test", std::nullopt,
                       {Sig("evil.test", "pass")}, o)
                .result,
            "fail");
  EXPECT_EQ(CheckDmarc(dns_, "example.test",
                       Spf(SpfResult::kPass, "a@evil.test"), {}, o)
                .result,
            "fail");
  EXPECT_EQ(CheckDmarc(dns_, "example.test", std::nullopt,
                       {Sig("mail.example.test", "pass")}, o)
                .result,
            "pass");
  EXPECT_EQ(CheckDmarc(dns_, "example.co.uk", std::nullopt,
                       {Sig("evil.co.uk", "pass")}, o)
                .result,
            "fail");
  EXPECT_EQ(CheckDmarc(dns_, "example.co.uk",
                       Spf(SpfResult::kPass, "a@evil.co.uk"), {}, o)
                .result,
            "fail");
  EXPECT_EQ(CheckDmarc(dns_, "example.co.uk", std::nullopt,
                       {Sig("mail.example.co.uk", "pass")}, o)
                .result,
            "pass");
}

// A subdomain of a public suffix is an organizational domain of its own:
// a signature of user.shared.example is not aligned with From:
// shared.example (libopendmarc's own check said it was), nor one of
// shared.example with a user's From:.
TEST_F(DmarcTest, ASubdomainOfAPublicSuffixIsNotAligned) {
  auto psl = PublicSuffixList::Parse("example\nshared.example\n");
  DmarcOptions o;
  o.psl = &psl;
  dns_.txt["_dmarc.shared.example"] = {"v=DMARC1; p=reject"};
  dns_.txt["_dmarc.user.shared.example"] = {"v=DMARC1; p=reject"};
  EXPECT_EQ(CheckDmarc(dns_, "shared.example", std::nullopt,
                       {Sig("user.shared.example", "pass")}, o)
                .result,
            "fail");
  EXPECT_EQ(CheckDmarc(dns_, "shared.example",
                       Spf(SpfResult::kPass, "a@user.shared.example"), {}, o)
                .result,
            "fail");
  EXPECT_EQ(CheckDmarc(dns_, "user.shared.example", std::nullopt,
                       {Sig("shared.example", "pass")}, o)
                .result,
            "fail");
  // Siblings under one organizational domain are aligned (relaxed).
  EXPECT_EQ(CheckDmarc(dns_, "a.user.shared.example", std::nullopt,
                       {Sig("b.user.shared.example", "pass")}, o)
                .result,
            "pass");
}

TEST_F(DmarcTest, RecordLookup) {
  dns_.txt["_dmarc.example.org"] = {"v=DMARC1; p=reject; sp=quarantine"};
  // A subdomain without its own record uses the organizational domain's
  // sp=.
  auto sub = CheckDmarc(dns_, "news.example.org", std::nullopt, {});
  EXPECT_EQ(sub.result, "fail");
  EXPECT_EQ(sub.policy, "quarantine");
  EXPECT_EQ(sub.record_domain, "example.org");
  EXPECT_EQ(CheckDmarc(dns_, "nodmarc.example", std::nullopt, {}).result,
            "none");
  EXPECT_EQ(CheckDmarc(dns_, "down.test", std::nullopt, {}).result,
            "temperror");
  EXPECT_EQ(CheckDmarc(dns_, "", std::nullopt, {}).result, "none");
  dns_.txt["_dmarc.broken.example"] = {"v=DMARC1; p=bogus"};
  EXPECT_EQ(CheckDmarc(dns_, "broken.example", std::nullopt, {}).result,
            "permerror");
  dns_.txt["_dmarc.spf-only.example"] = {"v=spf1 -all"};
  EXPECT_EQ(CheckDmarc(dns_, "spf-only.example", std::nullopt, {}).result,
            "none");
}

TEST_F(DmarcTest, PctSamplesTheFailingMessages) {
  dns_.txt["_dmarc.none-sampled.example"] = {"v=DMARC1; p=reject; pct=0"};
  dns_.txt["_dmarc.all.example"] = {"v=DMARC1; p=reject; pct=100"};
  dns_.txt["_dmarc.half.example"] = {"v=DMARC1; p=quarantine; pct=50"};
  DmarcOptions never{.sample = [] { return 99; }};
  DmarcOptions always{.sample = [] { return 0; }};
  // pct=0: no failing message is in the sample; reject becomes quarantine.
  auto out = CheckDmarc(dns_, "none-sampled.example", std::nullopt, {},
                        always);
  EXPECT_EQ(out.result, "fail");
  EXPECT_EQ(out.published, "reject");
  EXPECT_EQ(out.pct, 0);
  EXPECT_FALSE(out.sampled);
  EXPECT_EQ(out.policy, "quarantine");
  // pct=100: every one is.
  out = CheckDmarc(dns_, "all.example", std::nullopt, {}, never);
  EXPECT_TRUE(out.sampled);
  EXPECT_EQ(out.policy, "reject");
  // pct=50: the roll decides; quarantine outside the sample becomes none.
  out = CheckDmarc(dns_, "half.example", std::nullopt, {}, always);
  EXPECT_TRUE(out.sampled);
  EXPECT_EQ(out.policy, "quarantine");
  out = CheckDmarc(dns_, "half.example", std::nullopt, {}, never);
  EXPECT_FALSE(out.sampled);
  EXPECT_EQ(out.policy, "none");
  EXPECT_EQ(out.published, "quarantine");
  AuthResults r;
  r.authserv_id = "mx";
  r.dmarc = out;
  EXPECT_EQ(Summary(r), "dmarc=fail(p=quarantine pct=50->none):half.example");
  EXPECT_NE(FormatAuthenticationResults(r).find(
                "dmarc=fail (p=quarantine pct=50, not sampled) "
                "policy.dmarc=none"),
            std::string::npos)
      << FormatAuthenticationResults(r);
  // A passing message is not sampled at all.
  out = CheckDmarc(dns_, "half.example", std::nullopt,
                   {Sig("half.example", "pass")}, never);
  EXPECT_EQ(out.result, "pass");
  EXPECT_TRUE(out.sampled);
}

TEST(PublicSuffixListTest, OrganizationalDomains) {
  auto psl = PublicSuffixList::Parse(
      "// comment\n"
      "uk\nco.uk\n"
      "*.ck\n!www.ck\n"
      "com\n");
  EXPECT_EQ(psl.OrganizationalDomain("mail.example.co.uk"), "example.co.uk");
  EXPECT_EQ(psl.OrganizationalDomain("example.co.uk"), "example.co.uk");
  EXPECT_EQ(psl.OrganizationalDomain("co.uk"), "co.uk");
  EXPECT_EQ(psl.OrganizationalDomain("A.B.Example.COM."), "example.com");
  EXPECT_EQ(psl.OrganizationalDomain("a.b.example.ck"), "b.example.ck");
  EXPECT_EQ(psl.OrganizationalDomain("www.ck"), "www.ck");
  EXPECT_EQ(psl.OrganizationalDomain("x.www.ck"), "www.ck");
  // Not listed: the implicit "*" rule, the last label.
  EXPECT_EQ(psl.OrganizationalDomain("sub.example.test"), "example.test");
  EXPECT_EQ(psl.OrganizationalDomain("test"), "test");
}

TEST(PublicSuffixListTest, DebiansListLoads) {
  auto psl = PublicSuffixList::Load(kDebianPublicSuffixList);
  if (!psl.ok()) GTEST_SKIP() << "publicsuffix not installed";
  EXPECT_EQ(psl->OrganizationalDomain("news.bbc.co.uk"), "bbc.co.uk");
  EXPECT_EQ(psl->OrganizationalDomain("a.b.example.org"), "example.org");
  EXPECT_FALSE(PublicSuffixList::Load("/nonexistent/psl.dat").ok());
}

TEST_F(DmarcTest, OrganizationalDomainFromThePublicSuffixList) {
  auto psl = PublicSuffixList::Parse("uk\nco.uk\n");
  dns_.txt["_dmarc.example.co.uk"] = {"v=DMARC1; p=none; sp=reject"};
  dns_.txt["_dmarc.co.uk"] = {"v=DMARC1; p=quarantine"};
  // With the list, the record of mail.example.co.uk is example.co.uk's
  // and its sp= applies; the last two labels would have been co.uk.
  DmarcOptions with_psl;
  with_psl.psl = &psl;
  auto out = CheckDmarc(dns_, "mail.example.co.uk", std::nullopt, {},
                        with_psl);
  EXPECT_EQ(out.record_domain, "example.co.uk");
  EXPECT_EQ(out.result, "fail");
  EXPECT_EQ(out.policy, "reject");
  out = CheckDmarc(dns_, "mail.example.co.uk", std::nullopt, {});
  EXPECT_EQ(out.record_domain, "co.uk");
}

TEST(AuthResultsTest, OneHeaderWithEveryMethod) {
  AuthResults r;
  r.authserv_id = "mx.example.net";
  EXPECT_EQ(FormatAuthenticationResults(r),
            "Authentication-Results: mx.example.net; none\n");
  SpfOutcome spf;
  spf.result = SpfResult::kPass;
  spf.identity = "mailfrom";
  spf.checked = "alice@example.org";
  r.spf = spf;
  r.dkim_checked = true;
  EXPECT_EQ(FormatAuthenticationResults(r),
            "Authentication-Results: mx.example.net;\n"
            "\tspf=pass smtp.mailfrom=alice@example.org;\n"
            "\tdkim=none\n");
  r.dkim.push_back({"example.org", "s1", "rsa-sha256", "fail",
                    "signature (bad)", "abc+/def"});
  DmarcOutcome d;
  d.result = "fail";
  d.policy = d.published = "reject";
  d.from_domain = d.record_domain = "example.org";
  r.dmarc = d;
  EXPECT_EQ(FormatAuthenticationResults(r),
            "Authentication-Results: mx.example.net;\n"
            "\tspf=pass smtp.mailfrom=alice@example.org;\n"
            "\tdkim=fail (signature \\(bad\\)) header.d=example.org "
            "header.s=s1 header.a=rsa-sha256 header.b=abc+/def;\n"
            "\tdmarc=fail policy.dmarc=reject header.from=example.org\n");
  EXPECT_EQ(Summary(r),
            "spf=pass dkim=fail:example.org dmarc=fail(p=reject):example.org");
  r.spf->checked = "odd user@example.org";
  EXPECT_NE(FormatAuthenticationResults(r).find(
                "smtp.mailfrom=\"odd user@example.org\""),
            std::string::npos);
  // A key lookup that failed for now reports the a= tag as the message
  // wrote it: quoted when it is not a token.
  r.dkim[0].algorithm = "rsa-sha256\"(x";
  EXPECT_NE(FormatAuthenticationResults(r).find(
                " header.a=\"rsa-sha256\\\"(x\" "),
            std::string::npos)
      << FormatAuthenticationResults(r);
}

}  // namespace
}  // namespace zm::mailauth
