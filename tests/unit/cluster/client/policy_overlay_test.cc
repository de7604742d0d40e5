#include "cluster/client/policy_overlay.h"

#include <gtest/gtest.h>

namespace zm::cluster {
namespace {

constexpr int64_t kNow = 1'700'000'000'000;

v1::PolicyEntry Entry(std::string subject, v1::PolicyAction action,
                      int64_t expires_ms = 0) {
  v1::PolicyEntry e;
  e.set_subject(std::move(subject));
  e.set_action(action);
  e.set_expires_unix_ms(expires_ms);
  return e;
}

v1::PolicyUpdate Update(std::vector<v1::PolicyEntry> entries,
                        bool snapshot = false) {
  v1::PolicyUpdate u;
  u.set_snapshot(snapshot);
  for (auto& e : entries) *u.add_entries() = std::move(e);
  return u;
}

TEST(SubjectTest, Normalises) {
  struct Case {
    const char* in;
    const char* out;
    SubjectKind kind;
  } cases[] = {
      {"192.0.2.7", "192.0.2.7", SubjectKind::kAddress4},
      {"192.0.2.7/32", "192.0.2.7", SubjectKind::kAddress4},
      {"::ffff:192.0.2.7", "192.0.2.7", SubjectKind::kAddress4},
      {"198.51.100.0/24", "198.51.100.0/24", SubjectKind::kNetwork4},
      {"0.0.0.0/0", "0.0.0.0/0", SubjectKind::kNetwork4},
      {"2001:DB8:0::7", "2001:db8::7", SubjectKind::kAddress6},
      {"2001:db8::/48", "2001:db8::/48", SubjectKind::kNetwork6},
      {"Example.COM", "example.com", SubjectKind::kDomain},
      {"example.com.", "example.com", SubjectKind::kDomain},
      {".Example.com", ".example.com", SubjectKind::kSubdomains},
      {"Bob@Example.com", "bob@example.com", SubjectKind::kMailbox},
      {" spam@x-y.example ", "spam@x-y.example", SubjectKind::kMailbox},
  };
  for (const Case& c : cases) {
    auto s = ParseSubject(c.in);
    ASSERT_TRUE(s.ok()) << c.in << ": " << s.status();
    EXPECT_EQ(s->text, c.out) << c.in;
    EXPECT_EQ(s->kind, c.kind) << c.in;
  }
}

TEST(SubjectTest, RefusesWithAReason) {
  const char* bad[] = {"",          "192.0.2.7/24", "192.0.2.0/33",
                       "10.0.0.0/x", "300.1.1.1/8", "@example.com",
                       "a b@example.com", "bob@",    "bob@-bad.example",
                       "exa_mple.com", "..",        "a..b",
                       "foo bar",   "<bob@example.com>"};
  for (const char* b : bad) {
    auto s = ParseSubject(b);
    EXPECT_FALSE(s.ok()) << b;
    if (!s.ok()) {
      EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_NE(s.status().message().find("not a policy subject"),
                std::string::npos);
    }
  }
  // The network it meant is named.
  EXPECT_NE(ParseSubject("192.0.2.7/24").status().message().find(
                "192.0.2.0/24"),
            std::string::npos);
}

TEST(SubjectTest, ActionNames) {
  for (const char* n : {"reject", "defer", "freeze", "allow", "rate-class"}) {
    auto a = ParsePolicyAction(n);
    ASSERT_TRUE(a.has_value()) << n;
    EXPECT_EQ(PolicyActionName(*a), n);
  }
  EXPECT_FALSE(ParsePolicyAction("drop").has_value());
}

TEST(OverlayTest, IpLongestPrefixAndExactAddress) {
  PolicyOverlay o;
  o.Apply(Update({Entry("192.0.2.0/24", v1::POLICY_ACTION_DEFER),
                  Entry("192.0.2.128/25", v1::POLICY_ACTION_REJECT),
                  Entry("192.0.2.200", v1::POLICY_ACTION_ALLOW),
                  Entry("2001:db8::/32", v1::POLICY_ACTION_FREEZE)}));
  EXPECT_EQ(o.ForIp("192.0.2.1", kNow)->action(), v1::POLICY_ACTION_DEFER);
  EXPECT_EQ(o.ForIp("192.0.2.129", kNow)->action(), v1::POLICY_ACTION_REJECT);
  EXPECT_EQ(o.ForIp("192.0.2.200", kNow)->action(), v1::POLICY_ACTION_ALLOW);
  EXPECT_EQ(o.ForIp("::ffff:192.0.2.1", kNow)->action(),
            v1::POLICY_ACTION_DEFER);
  EXPECT_EQ(o.ForIp("2001:db8:1::1", kNow)->action(),
            v1::POLICY_ACTION_FREEZE);
  EXPECT_FALSE(o.ForIp("192.0.3.1", kNow).has_value());
  EXPECT_FALSE(o.ForIp("2001:db9::1", kNow).has_value());
  EXPECT_FALSE(o.ForIp("not-an-ip", kNow).has_value());
  EXPECT_EQ(o.size(), 4u);
}

TEST(OverlayTest, AddressThenDomainWalk) {
  PolicyOverlay o;
  o.Apply(Update({Entry("spammer@example.com", v1::POLICY_ACTION_REJECT),
                  Entry("example.com", v1::POLICY_ACTION_DEFER),
                  Entry(".example.org", v1::POLICY_ACTION_FREEZE)}));
  EXPECT_EQ(o.ForAddress("Spammer@Example.COM", kNow)->action(),
            v1::POLICY_ACTION_REJECT);
  EXPECT_EQ(o.ForAddress("other@example.com", kNow)->action(),
            v1::POLICY_ACTION_DEFER);
  // "example.com" is that domain only; ".example.org" takes subdomains.
  EXPECT_FALSE(o.ForAddress("a@sub.example.com", kNow).has_value());
  EXPECT_EQ(o.ForAddress("a@deep.sub.example.org", kNow)->action(),
            v1::POLICY_ACTION_FREEZE);
  EXPECT_EQ(o.ForAddress("a@example.org", kNow)->action(),
            v1::POLICY_ACTION_FREEZE);
  EXPECT_FALSE(o.ForAddress("a@example.net", kNow).has_value());
  EXPECT_FALSE(o.ForAddress("", kNow).has_value());
}

TEST(OverlayTest, ExpiredIgnoredDeletesAndSnapshotsReplace) {
  PolicyOverlay o;
  o.Apply(Update({Entry("192.0.2.7", v1::POLICY_ACTION_REJECT, kNow - 1),
                  Entry("198.51.100.7", v1::POLICY_ACTION_REJECT, kNow + 1000),
                  Entry("bad subject!", v1::POLICY_ACTION_REJECT)}));
  EXPECT_FALSE(o.ForIp("192.0.2.7", kNow).has_value());
  EXPECT_TRUE(o.ForIp("198.51.100.7", kNow).has_value());
  EXPECT_FALSE(o.ForIp("198.51.100.7", kNow + 1000).has_value());
  EXPECT_EQ(o.size(), 2u);  // the bad subject was skipped

  v1::PolicyEntry del = Entry("198.51.100.7", v1::POLICY_ACTION_REJECT);
  del.set_deleted(true);
  o.Apply(Update({del}));
  EXPECT_FALSE(o.ForIp("198.51.100.7", kNow).has_value());

  o.Apply(Update({Entry("example.com", v1::POLICY_ACTION_DEFER)}, true));
  EXPECT_EQ(o.size(), 1u);
  EXPECT_FALSE(o.ForIp("192.0.2.7", 0).has_value());
}

}  // namespace
}  // namespace zm::cluster
