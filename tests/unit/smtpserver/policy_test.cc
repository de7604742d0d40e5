// smtp-policy: parsing, macro resolution, every lookup kind, compilation
// into db/smtp-policy and reloading a new generation.
#include <gtest/gtest.h>

#include "node/smtpserver/smtpserver_policy.h"
#include "tests/unit/smtpserver/policy_testing.h"

namespace zm::smtpserver {
namespace {

constexpr char kSrc[] = R"(
_full_rights     relaycustnet + fulltrustnet +
_consumer        ratelimitmsgs 100,500 maxinsize 1000000
_bulk_mail       rejectsource + message "bulk mail refused"
[192.0.2.0]/24   = _full_rights
[198.51.100.0]/24  = _consumer
[198.51.100.7]   rejectnet + message "go away"
[203.0.113.0]/24 freezenet +
[ipv6:2001:db8::]/32   = _consumer
[ipv6:2001:db8:1::]/48 relaycustnet +
.spam.example    = _bulk_mail
spam.example     freezesource +
abuser@          rejectsource +
boss@example.org fulltrustnet + = _bulk_mail
example.org      relaytarget +
.                senderokwithdns -
)";

Policy Parsed() {
  auto p = Policy::Parse("smtp-policy.src", kSrc,
                         {{"smtp-policy.spam", "bulk.example\n"},
                          {"smtp-policy.mx", "customer.example\n"}});
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *p : Policy();
}

TEST(PolicyLookup, IpLongestPrefixV4AndV6) {
  Policy p = Parsed();
  EXPECT_EQ(p.ForIp("198.51.100.9").Get("ratelimitmsgs"), "100,500");
  EXPECT_EQ(p.ForIp("198.51.100.9").key, "[198.51.100.0]/24");
  PolicyAttrs host = p.ForIp("198.51.100.7");
  EXPECT_TRUE(host.Is("rejectnet"));
  EXPECT_EQ(host.Get("message"), "go away");
  EXPECT_FALSE(host.Get("ratelimitmsgs"));  // the /32 wins, alone
  EXPECT_TRUE(p.ForIp("::ffff:198.51.100.7").Is("rejectnet"));
  EXPECT_EQ(p.ForIp("2001:db8:9::1").Get("ratelimitmsgs"), "100,500");
  EXPECT_TRUE(p.ForIp("2001:db8:1:2::3").Is("relaycustnet"));
  EXPECT_TRUE(p.ForIp("192.0.2.1").Is("fulltrustnet"));
  EXPECT_TRUE(p.ForIp("127.0.0.1").Is("fulltrustnet"));  // built in
  EXPECT_TRUE(p.ForIp("::1").Is("relaycustnet"));
  EXPECT_TRUE(p.ForIp("10.0.0.1").empty());
  EXPECT_TRUE(p.ForIp("not-an-ip").empty());
  EXPECT_TRUE(p.IsTrusted("2001:db8:1::9"));
  EXPECT_FALSE(p.IsTrusted("2001:db8:2::9"));
}

TEST(PolicyLookup, DomainsWalkTowardsTheRoot) {
  Policy p = Parsed();
  EXPECT_TRUE(p.ForDomain("a.b.spam.example").Is("rejectsource"));
  EXPECT_EQ(p.ForDomain("a.b.spam.example").key, ".spam.example");
  // The exact key comes before the suffix key.
  EXPECT_TRUE(p.ForDomain("spam.example").Is("freezesource"));
  EXPECT_FALSE(p.ForDomain("spam.example").Is("rejectsource"));
  EXPECT_TRUE(p.ForDomain("Example.ORG.").Is("relaytarget"));
  EXPECT_FALSE(p.ForDomain("sub.example.org").Is("relaytarget"));
  EXPECT_EQ(p.ForDomain("sub.example.org").key, ".");
  EXPECT_TRUE(p.ForDomain("customer.example").Is("relaytarget"));  // mx list
  EXPECT_TRUE(p.ForDomain("bulk.example").Is("rejectsource"));     // spam
  EXPECT_EQ(p.ForDomain("bulk.example").Get("message"),
            "bulk mail refused");
}

TEST(PolicyLookup, AddressesThenUserThenDomain) {
  Policy p = Parsed();
  PolicyAttrs boss = p.ForAddress("Boss@Example.org");
  EXPECT_EQ(boss.key, "boss@example.org");
  // Its own attribute first, then the macro's.
  EXPECT_TRUE(boss.Is("fulltrustnet"));
  EXPECT_TRUE(boss.Is("rejectsource"));
  EXPECT_TRUE(p.ForAddress("abuser@anywhere.test").Is("rejectsource"));
  EXPECT_EQ(p.ForAddress("abuser@anywhere.test").key, "abuser@");
  EXPECT_TRUE(p.ForAddress("x@mail.spam.example").Is("rejectsource"));
  EXPECT_TRUE(p.ForAddress("x@example.org").Is("relaytarget"));
}

TEST(PolicyAttrs, OwnValuesBeatMacros) {
  auto p = Policy::Parse("src", R"(
_t   ratelimitmsgs 10 message "from tag"
_u   = _t
x.example  message "own" = _u
)",
                         {});
  ASSERT_TRUE(p.ok()) << p.status();
  PolicyAttrs a = p->ForDomain("x.example");
  EXPECT_EQ(a.Get("message"), "own");
  EXPECT_EQ(a.Get("ratelimitmsgs"), "10");
  EXPECT_EQ(PolicyAttrs::Deserialize(a.Serialize()).list(), a.list());
}

TEST(PolicyAttrs, RateLimitValues) {
  auto r = ParseRateLimit("-5,20");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->messages, -5);
  EXPECT_EQ(r->recipients, 20);
  r = ParseRateLimit("7");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->messages, 7);
  EXPECT_EQ(r->recipients, 0);
  EXPECT_FALSE(ParseRateLimit("lots"));
  auto p = Policy::Parse("src", "[10.0.0.0]/8 ratelimitmsgs 5,x\n", {});
  ASSERT_FALSE(p.ok());
  EXPECT_NE(std::string(p.status().message()).find("src:1: ratelimitmsgs"),
            std::string::npos)
      << p.status();
}

TEST(PolicyDb, CompiledAndReloadedOnANewGeneration) {
  testing::ScratchNode n;
  n.Write("etc/smtp-policy.src", kSrc);
  n.Write("etc/smtp-policy.relay", "[10.1.0.0]/16\n");
  std::string report;
  ASSERT_TRUE(CompilePolicy(n.node(), &report).ok());
  EXPECT_NE(report.find("smtp-policy: "), std::string::npos) << report;
  auto p = Policy::Load(n.node());
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_NE(p->origin().find("db/smtp-policy."), std::string::npos);
  EXPECT_TRUE(p->IsTrusted("10.1.2.3"));
  EXPECT_TRUE(p->ForIp("198.51.100.7").Is("rejectnet"));
  EXPECT_TRUE(p->ForIp("2001:db8:1::1").Is("relaycustnet"));
  EXPECT_TRUE(p->ForAddress("abuser@x.test").Is("rejectsource"));
  EXPECT_TRUE(p->ForDomain("q.spam.example").Is("rejectsource"));
  EXPECT_TRUE(p->IsTrusted("127.0.0.1"));
  // The running server's Policy sees the next newdb.
  n.Write("etc/smtp-policy.relay", "[10.2.0.0]/16\n");
  ASSERT_TRUE(CompilePolicy(n.node(), nullptr).ok());
  EXPECT_FALSE(p->IsTrusted("10.1.2.3"));
  EXPECT_TRUE(p->IsTrusted("10.2.2.3"));
}

TEST(PolicyDb, PrefixLengthsFollowEachGeneration) {
  // ForIp probes only the prefix lengths the keys use: a length that only
  // a newer generation has must be found after newdb.
  testing::ScratchNode n;
  n.Write("etc/smtp-policy.src", "[10.1.0.0]/16 relaycustnet +\n");
  ASSERT_TRUE(CompilePolicy(n.node(), nullptr).ok());
  auto p = Policy::Load(n.node());
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->IsTrusted("10.1.9.9"));
  EXPECT_FALSE(p->IsTrusted("10.20.1.1"));
  n.Write("etc/smtp-policy.src",
          "[10.16.0.0]/12 relaycustnet +\n[ipv6:2001:db8::]/29 "
          "relaycustnet +\n");
  ASSERT_TRUE(CompilePolicy(n.node(), nullptr).ok());
  EXPECT_TRUE(p->IsTrusted("10.20.1.1"));
  EXPECT_TRUE(p->IsTrusted("2001:db8:7::1"));
  EXPECT_TRUE(p->IsTrusted("127.0.0.1"));  // the built-in /8 still
}

TEST(PolicyAttrs, DnsblValuesAreChecked) {
  EXPECT_TRUE(Policy::Parse("src", "[10.0.0.0]/8 test-dns-rbl +\n", {}).ok());
  EXPECT_TRUE(
      Policy::Parse("src", "[10.0.0.0]/8 rcpt-dns-rbl a.test:b.test\n", {})
          .ok());
  auto bad = Policy::Parse("src", "\n[10.0.0.0]/8 test-dns-rbl a/b\n", {});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find("src:2: test-dns-rbl"),
            std::string::npos)
      << bad.status();
}

TEST(PolicyDb, ABadSourceIsNotCompiled) {
  testing::ScratchNode n;
  n.Write("etc/smtp-policy.src", "x.example frob +\n");
  absl::Status s = CompilePolicy(n.node(), nullptr);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("smtp-policy.src:1: unknown"),
            std::string::npos)
      << s;
  // Nothing compiled: Load parses the source and reports the same error.
  EXPECT_FALSE(Policy::Load(n.node()).ok());
}

}  // namespace
}  // namespace zm::smtpserver
