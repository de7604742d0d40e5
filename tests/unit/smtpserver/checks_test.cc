// The smtpserver's policy Checks: every check kind against real Sessions,
// a scratch node (compiled relations for recipient verification), a fake
// resolver and, when built, the in-memory rate-tracker.
#include <gtest/gtest.h>

#include <ctime>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "node/dns/resolver.h"
#include "node/relations/relation_db.h"
#include "node/smtp/session.h"
#include "node/smtpserver/smtpserver_auth.h"
#include "node/smtpserver/smtpserver_checks.h"
#include "node/smtpserver/smtpserver_filter.h"
#include "node/smtpserver/smtpserver_verify.h"
#include "node/ratetrack/rate_tracker.h"
#include "tests/unit/smtpserver/policy_testing.h"

namespace zm::smtpserver {
namespace {

using smtp::Check;
using smtp::CheckKind;
using smtp::Verdict;

constexpr char kSrc[] = R"(
[192.0.2.0]/24     relaycustnet + fulltrustnet +
[198.51.100.0]/24  ratelimitmsgs 2,3
[198.51.100.128]/25  ratelimitmsgs -2,-3
[203.0.113.0]/24   freezenet +
[203.0.113.66]     rejectnet + message "no thanks"
[ipv6:2001:db8::]/32  ratelimitmsgs 1
.bad.example       rejectsource +
helo.bad           rejectsource +
.resolve.test      senderokwithdns -
.soft.test         senderokwithdns +
partner.example    relaytarget +
)";

class FakeResolver : public dns::Resolver {
 public:
  std::map<std::string, std::vector<dns::MxRecord>> mx;
  absl::StatusOr<std::vector<dns::MxRecord>> LookupMx(
      std::string_view d) override {
    if (std::string(d) == "down.resolve.test") {
      return absl::UnavailableError("timeout");
    }
    auto it = mx.find(std::string(d));
    if (it == mx.end()) return absl::NotFoundError("NXDOMAIN");
    return it->second;
  }
  absl::StatusOr<std::vector<std::string>> LookupA(std::string_view) override {
    return absl::NotFoundError("NXDOMAIN");
  }
  absl::StatusOr<std::vector<std::string>> LookupAaaa(
      std::string_view) override {
    return absl::NotFoundError("NXDOMAIN");
  }
  absl::StatusOr<std::vector<std::string>> LookupPtr(
      std::string_view) override {
    return absl::NotFoundError("NXDOMAIN");
  }
  absl::StatusOr<std::vector<std::string>> LookupTxt(
      std::string_view) override {
    return absl::NotFoundError("NXDOMAIN");
  }
  absl::StatusOr<std::vector<dns::SrvRecord>> LookupSrv(
      std::string_view) override {
    return absl::NotFoundError("NXDOMAIN");
  }
};

class FakeAuth : public Authenticator {
 public:
  absl::StatusOr<bool> Verify(std::string_view user,
                              std::string_view password) override {
    if (user == "broken") return absl::UnavailableError("pipe died");
    return user == "alice" && password == "secret";
  }
};

class FakeFilter : public ContentFilter {
 public:
  FilterResult next{FilterResult::Outcome::kAccept, 250, "2.0.0", ""};
  std::string asked;
  FilterResult Check(const std::string& path,
                     const std::string& queue_id) override {
    asked = path + " " + queue_id;
    return next;
  }
};

class ChecksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    n_.Write("etc/smtp-policy.src", kSrc);
    ASSERT_TRUE(relations::BuildAndSwap(
                    n_.node().db(), "aliases",
                    {{"staff", "alice\nbob@partner.example"},
                     {"root", "alice"}})
                    .ok());
    n_.Write("mail/alice", "");
    MakeChecks([](Settings&) {});
  }

  template <typename F>
  void MakeChecks(F adjust) {
    auto s = std::make_shared<Settings>();
    auto p = Policy::Load(node_);
    ASSERT_TRUE(p.ok()) << p.status();
    s->policy = *p;
    s->domains.Add("example.net");
    s->domains.Add("mx.example.net");
    s->session.hostname = "mx.example.net";
    s->server.helo_patterns = {
        {1, "*.refused.test", 999, "", "No mail from your host"},
        {2, "verify.test", 999, "ve", ""},
        {3, "*", 999, "v", ""}};
    adjust(*s);
    settings_ = s;
    CheckDeps deps;
    deps.node = &node_;
    deps.dns = &dns_;
    deps.auth = &auth_;
    deps.filter = &filter_;
    rates_ = ratetrack::RateTracker::InMemory("test", {});
    deps.rates = rates_.get();
    checks_ = MakePolicyChecks(settings_, deps);
  }

  std::unique_ptr<smtp::Session> NewSession(std::string addr,
                                            bool trusted = false) {
    smtp::ClientInfo ci;
    ci.addr = std::move(addr);
    ci.port = std::to_string(++port_);
    ci.local_addr = "192.0.2.250";
    ci.trusted = trusted;
    return std::make_unique<smtp::Session>(settings_->session, ci);
  }

  Verdict Ask(const smtp::Session& s, CheckKind kind, std::string arg = "") {
    Check c;
    c.kind = kind;
    c.arg = std::move(arg);
    return checks_->Decide(s, c);
  }
  static std::string Text(const Verdict& v) {
    return v.reply ? v.reply->Summary() : "(accept)";
  }
  static bool Accepted(const Verdict& v) {
    return v.outcome == Verdict::Outcome::kAccept;
  }

  testing::ScratchNode n_;
  NodeDir node_ = n_.node();
  FakeResolver dns_;
  FakeAuth auth_;
  FakeFilter filter_;
  std::shared_ptr<Settings> settings_;
  std::unique_ptr<ratetrack::RateTracker> rates_;
  std::unique_ptr<SessionChecks> checks_;
  int port_ = 40000;
};

TEST_F(ChecksTest, ConnectRejectsFreezesAndTrusts) {
  auto s = NewSession("203.0.113.66");
  Verdict v = Ask(*s, CheckKind::kConnect);
  EXPECT_EQ(v.outcome, Verdict::Outcome::kReject);
  EXPECT_TRUE(v.close);
  EXPECT_EQ(Text(v), "554 5.7.1 no thanks");

  auto t = NewSession("192.0.2.5");
  v = Ask(*t, CheckKind::kConnect);
  EXPECT_TRUE(Accepted(v));
  EXPECT_TRUE(v.relay_allowed);
  EXPECT_EQ(v.style_flags, "v");  // "[192.0.2.5]" matched "*"

  auto u = NewSession("198.51.100.1");
  EXPECT_FALSE(Ask(*u, CheckKind::kConnect).relay_allowed);

  auto f = NewSession("203.0.113.5");
  EXPECT_TRUE(Accepted(Ask(*f, CheckKind::kConnect)));
  Check m;
  m.kind = CheckKind::kMessage;
  v = checks_->Decide(*f, m);
  EXPECT_EQ(v.outcome, Verdict::Outcome::kFreeze);
  EXPECT_NE(v.freeze_reason.find("freezenet"), std::string::npos);
}

TEST_F(ChecksTest, HeloPatternsAndPolicy) {
  auto s = NewSession("198.51.100.1");
  Verdict v = Ask(*s, CheckKind::kHelo, "host.refused.test");
  EXPECT_EQ(Text(v), "550 5.7.1 No mail from your host");
  v = Ask(*s, CheckKind::kHelo, "helo.bad");
  EXPECT_EQ(v.outcome, Verdict::Outcome::kReject);
  EXPECT_EQ(v.reply->code, 550);
  v = Ask(*s, CheckKind::kHelo, "verify.test");
  EXPECT_TRUE(Accepted(v));
  EXPECT_EQ(v.style_flags, "ve");
}

TEST_F(ChecksTest, NoOpenRelay) {
  auto s = NewSession("198.51.100.1");
  ASSERT_TRUE(Accepted(Ask(*s, CheckKind::kConnect)));
  for (const char* rcpt :
       {"victim@elsewhere.test", "victim%elsewhere.test@example.net",
        "elsewhere.test!victim@example.net",
        "\"victim@elsewhere.test\"@example.net",
        "@example.net:victim@elsewhere.test", "victim@[203.0.113.9]",
        "victim@example.net.elsewhere.test"}) {
    Verdict v = Ask(*s, CheckKind::kRcptTo, rcpt);
    ASSERT_EQ(v.outcome, Verdict::Outcome::kReject) << rcpt;
    // The 421 of max-error-recipients may come first; count a fresh one.
    s = NewSession("198.51.100.1");
    EXPECT_EQ(v.reply->code, 554) << rcpt;
    EXPECT_EQ(v.reply->enhanced, "5.7.1") << rcpt;
    EXPECT_NE(v.reply->Summary().find(rcpt), std::string::npos)
        << v.reply->Summary();
  }
  // Ours and our relay targets from anyone.
  for (const char* rcpt :
       {"alice@example.net", "alice@MX.example.net", "x@partner.example",
        "alice@[192.0.2.250]", "postmaster"}) {
    EXPECT_TRUE(Accepted(Ask(*s, CheckKind::kRcptTo, rcpt)))
        << rcpt << " " << Text(Ask(*s, CheckKind::kRcptTo, rcpt));
  }
  // Trusted networks and trusted clients relay.
  auto t = NewSession("192.0.2.5");
  EXPECT_TRUE(Accepted(Ask(*t, CheckKind::kRcptTo, "victim@elsewhere.test")));
  EXPECT_TRUE(Accepted(
      Ask(*t, CheckKind::kRcptTo, "victim%elsewhere.test@example.net")));
  auto l = NewSession("10.0.0.1", /*trusted=*/true);
  EXPECT_TRUE(Accepted(Ask(*l, CheckKind::kRcptTo, "v@elsewhere.test")));
}

TEST_F(ChecksTest, TooManyBadRecipientsCloses) {
  auto s = NewSession("198.51.100.1");
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(Ask(*s, CheckKind::kRcptTo, "x@elsewhere.test").reply->code,
              554);
  }
  Verdict v = Ask(*s, CheckKind::kRcptTo, "x@elsewhere.test");
  EXPECT_EQ(v.reply->code, 421);
  EXPECT_TRUE(v.close);
}

TEST_F(ChecksTest, RecipientVerification) {
  // Without enable-router nothing is verified, whatever the flags.
  auto s = NewSession("198.51.100.1");
  ASSERT_TRUE(Accepted(Ask(*s, CheckKind::kHelo, "verify.test")));
  EXPECT_TRUE(Accepted(Ask(*s, CheckKind::kRcptTo, "nobody-here@example.net")));
  MakeChecks([](Settings& st) { st.server.enable_router = true; });
  // With it, the `e` flag of the client's HELO pattern line decides.
  auto t = NewSession("198.51.100.1");
  ASSERT_TRUE(Accepted(Ask(*t, CheckKind::kHelo, "plain.test")));  // "v"
  EXPECT_TRUE(Accepted(Ask(*t, CheckKind::kRcptTo, "nobody-here@example.net")));
  ASSERT_TRUE(Accepted(Ask(*t, CheckKind::kHelo, "verify.test")));  // "ve"
  Verdict v = Ask(*t, CheckKind::kRcptTo, "nobody-here@example.net");
  EXPECT_EQ(Text(v),
            "550 5.1.1 <nobody-here@example.net>: Recipient address "
            "rejected: user unknown");
  for (const char* ok : {"staff@example.net", "Alice@example.net",
                         "postmaster@example.net", "root@example.net"}) {
    EXPECT_TRUE(Accepted(Ask(*t, CheckKind::kRcptTo, ok))) << ok;
  }
  // No pattern line matched: verified.
  settings_->server.helo_patterns.clear();
  auto u = NewSession("198.51.100.1");
  EXPECT_EQ(Ask(*u, CheckKind::kRcptTo, "ghost@example.net").reply->code, 550);
  // Relay targets are not ours to verify.
  EXPECT_TRUE(Accepted(Ask(*u, CheckKind::kRcptTo, "ghost@partner.example")));
}

TEST_F(ChecksTest, VrfyAndExpn) {
  auto s = NewSession("198.51.100.1");
  Verdict v = Ask(*s, CheckKind::kVrfy, "alice");
  ASSERT_TRUE(v.reply);
  EXPECT_EQ(Text(v), "250 2.1.5 <alice@mx.example.net>");
  v = Ask(*s, CheckKind::kVrfy, "ghost@example.net");
  EXPECT_EQ(v.reply->code, 550);
  EXPECT_EQ(v.reply->enhanced, "5.1.1");
  v = Ask(*s, CheckKind::kVrfy, "someone@elsewhere.test");
  EXPECT_EQ(v.reply->code, 252);
  v = Ask(*s, CheckKind::kExpn, "staff");
  ASSERT_TRUE(v.reply);
  EXPECT_EQ(v.reply->code, 250);
  EXPECT_EQ(v.reply->lines, (std::vector<std::string>{
                                "<alice@mx.example.net>",
                                "<bob@partner.example>"}));
}

TEST_F(ChecksTest, SenderPolicyAndDns) {
  auto s = NewSession("198.51.100.1");
  Verdict v = Ask(*s, CheckKind::kMailFrom, "x@mail.bad.example");
  EXPECT_EQ(v.reply->code, 550);
  EXPECT_NE(Text(v).find("<x@mail.bad.example>"), std::string::npos);
  EXPECT_TRUE(Accepted(Ask(*s, CheckKind::kMailFrom, "")));  // null sender
  // senderokwithdns -: a domain that does not exist is refused for good,
  // one whose DNS is down for now; + is always soft.
  dns_.mx["ok.resolve.test"] = {{10, "mx.ok.resolve.test"}};
  EXPECT_TRUE(Accepted(Ask(*s, CheckKind::kMailFrom, "a@ok.resolve.test")));
  EXPECT_EQ(Ask(*s, CheckKind::kMailFrom, "a@no.resolve.test").reply->code,
            550);
  EXPECT_EQ(Ask(*s, CheckKind::kMailFrom, "a@down.resolve.test").reply->code,
            450);
  EXPECT_EQ(Ask(*s, CheckKind::kMailFrom, "a@no.soft.test").reply->code, 450);
  // Trusted networks are not asked.
  auto t = NewSession("192.0.2.5");
  EXPECT_TRUE(Accepted(Ask(*t, CheckKind::kMailFrom, "a@mail.bad.example")));
}

TEST_F(ChecksTest, EtrnNeedsAnAllowedDomainAndAScheduler) {
  auto s = NewSession("198.51.100.1");
  EXPECT_EQ(Ask(*s, CheckKind::kEtrn, "elsewhere.test").reply->code, 459);
  EXPECT_EQ(Ask(*s, CheckKind::kEtrn, "#queue").reply->code, 458);
  // Allowed, but no scheduler is running in the scratch node.
  EXPECT_EQ(Ask(*s, CheckKind::kEtrn, "@partner.example").reply->code, 458);
}

TEST_F(ChecksTest, AuthVerifiesThroughTheAuthenticator) {
  auto s = NewSession("198.51.100.1");
  Check c;
  c.kind = CheckKind::kAuth;
  c.mechanism = "PLAIN";
  c.user = "alice";
  c.password = "secret";
  Verdict v = checks_->Decide(*s, c);
  EXPECT_TRUE(Accepted(v));
  EXPECT_TRUE(v.relay_allowed);
  EXPECT_EQ(v.auth_user, "alice");
  c.password = "wrong";
  EXPECT_EQ(Text(checks_->Decide(*s, c)),
            "535 5.7.8 Authentication credentials invalid");
  c.user = "broken";
  EXPECT_EQ(checks_->Decide(*s, c).reply->code, 454);
  // Without an authenticator every AUTH fails.
  checks_ = MakePolicyChecks(settings_, CheckDeps{.node = &node_});
  c.user = "alice";
  c.password = "secret";
  EXPECT_EQ(checks_->Decide(*s, c).reply->code, 535);
}

TEST_F(ChecksTest, ContentFilterDecidesNeverAcceptsUnchecked) {
  auto s = NewSession("198.51.100.1");
  Check m;
  m.kind = CheckKind::kMessage;
  m.staged_path = "/spool/tmp/x";
  m.queue_id = "QID1";
  filter_.next.outcome = FilterResult::Outcome::kAccept;
  EXPECT_TRUE(Accepted(checks_->Decide(*s, m)));
  EXPECT_EQ(filter_.asked, "/spool/tmp/x QID1");
  filter_.next = FilterResult{FilterResult::Outcome::kReject, 550, "5.7.1",
                              "virus found"};
  EXPECT_EQ(Text(checks_->Decide(*s, m)), "550 5.7.1 virus found");
  filter_.next = FilterResult{FilterResult::Outcome::kFreeze, 250, "2.0.0",
                              "looks odd"};
  Verdict v = checks_->Decide(*s, m);
  EXPECT_EQ(v.outcome, Verdict::Outcome::kFreeze);
  EXPECT_NE(v.freeze_reason.find("looks odd"), std::string::npos);
  filter_.next = FilterResult{};  // a timeout or a dead filter
  EXPECT_EQ(Text(checks_->Decide(*s, m)),
            "451 4.7.1 Content check failed, try again later");
}

TEST_F(ChecksTest, AuthFailRateLocksTheAddressOut) {
  MakeChecks([](Settings& st) { st.server.auth_failrate = 2; });
  auto s = NewSession("198.51.100.1");
  Check c;
  c.kind = CheckKind::kAuth;
  c.user = "alice";
  EXPECT_EQ(checks_->Decide(*s, c).reply->code, 535);
  EXPECT_EQ(checks_->Decide(*s, c).reply->code, 535);
  Verdict v = checks_->Decide(*s, c);
  EXPECT_EQ(v.reply->code, 454);
  EXPECT_EQ(v.reply->enhanced, "4.7.0");
  // Another address is not affected.
  auto t = NewSession("198.51.100.2");
  EXPECT_EQ(checks_->Decide(*t, c).reply->code, 535);
}

TEST_F(ChecksTest, MessageRateLimitSoftAndHard) {
  auto s = NewSession("198.51.100.1");  // ratelimitmsgs 2,3
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(Accepted(Ask(*s, CheckKind::kMailFrom, "a@example.net")));
    checks_->Record(*s, smtp::Checks::Event::kCommitted);
  }
  Verdict v = Ask(*s, CheckKind::kMailFrom, "a@example.net");
  EXPECT_EQ(v.reply->code, 450);
  EXPECT_EQ(v.reply->enhanced, "4.7.1");
  EXPECT_EQ(rates_->Get("ip4:198.51.100.1", ::time(nullptr)).excesses, 1u);
  auto h = NewSession("198.51.100.200");  // ratelimitmsgs -2,-3
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(Accepted(Ask(*h, CheckKind::kMailFrom, "a@example.net")));
    checks_->Record(*h, smtp::Checks::Event::kCommitted);
  }
  v = Ask(*h, CheckKind::kMailFrom, "a@example.net");
  EXPECT_EQ(v.reply->code, 550);
  EXPECT_EQ(v.reply->enhanced, "5.7.1");
  // The neighbour address has its own count.
  auto n = NewSession("198.51.100.2");
  EXPECT_TRUE(Accepted(Ask(*n, CheckKind::kMailFrom, "a@example.net")));
}

TEST_F(ChecksTest, RecipientLimitCountsRecipients) {
  auto s = NewSession("198.51.100.1");  // 3 recipients per window
  ASSERT_TRUE(Accepted(Ask(*s, CheckKind::kMailFrom, "a@example.net")));
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(Accepted(Ask(*s, CheckKind::kRcptTo, "alice@example.net")));
  }
  checks_->Record(*s, smtp::Checks::Event::kCommitted);  // 1 msg, 3 rcpts
  ASSERT_TRUE(Accepted(Ask(*s, CheckKind::kMailFrom, "a@example.net")));
  Verdict v = Ask(*s, CheckKind::kRcptTo, "alice@example.net");
  EXPECT_EQ(v.reply->code, 450);
}

TEST_F(ChecksTest, Ipv6SourcesAreTrackedPerSlash64) {
  auto a = NewSession("2001:db8:1:2::10");  // ratelimitmsgs 1
  ASSERT_TRUE(Accepted(Ask(*a, CheckKind::kMailFrom, "a@example.net")));
  checks_->Record(*a, smtp::Checks::Event::kCommitted);
  auto b = NewSession("2001:db8:1:2::99");  // the same /64
  EXPECT_EQ(Ask(*b, CheckKind::kMailFrom, "a@example.net").reply->code, 450);
  auto c = NewSession("2001:db8:1:3::1");  // another /64
  EXPECT_TRUE(Accepted(Ask(*c, CheckKind::kMailFrom, "a@example.net")));
}

TEST(Verifier, LooksUpRelationsUsersMailboxesAndLists) {
  testing::ScratchNode n;
  ASSERT_TRUE(relations::BuildAndSwap(n.node().db(), "aliases",
                                      {{"staff", "alice\n|/bin/true"}})
                  .ok());
  ASSERT_TRUE(relations::BuildAndSwap(n.node().db(), "fqdnaliases",
                                      {{"sales@shop.example", "bob"}})
                  .ok());
  ASSERT_TRUE(relations::BuildAndSwap(n.node().db(), "routesdb",
                                      {{"routed.example", "smtp!gw"}})
                  .ok());
  n.Write("mail/carol", "");
  n.Write("etc/lists/friends", "alice\n");
  RecipientVerifier v(n.node());
  using K = RecipientVerifier::Kind;
  EXPECT_EQ(v.Lookup("Staff", "").kind, K::kAlias);
  EXPECT_EQ(v.Lookup("staff", "").expansion,
            (std::vector<std::string>{"alice", "|/bin/true"}));
  EXPECT_EQ(v.Lookup("sales", "shop.example").kind, K::kAlias);
  EXPECT_EQ(v.Lookup("sales", "other.example").kind, K::kUnknown);
  EXPECT_EQ(v.Lookup("anyone", "routed.example").kind, K::kRouted);
  EXPECT_EQ(v.Lookup("carol", "").kind, K::kUser);
  EXPECT_EQ(v.Lookup("root", "").kind, K::kUser);  // getpwnam
  EXPECT_EQ(v.Lookup("friends", "").kind, K::kList);
  EXPECT_EQ(v.Lookup("PostMaster", "x.example").kind, K::kPostmaster);
  EXPECT_EQ(v.Lookup("ghost", "").kind, K::kUnknown);
  EXPECT_EQ(v.Lookup("../etc", "").kind, K::kUnknown);
  // A new generation of aliases is seen at once.
  ASSERT_TRUE(
      relations::BuildAndSwap(n.node().db(), "aliases", {{"ghost", "alice"}})
          .ok());
  EXPECT_EQ(v.Lookup("ghost", "").kind, K::kAlias);
  EXPECT_EQ(v.Lookup("staff", "").kind, K::kUnknown);
}

TEST_F(ChecksTest, ClientAttributesAreLookedUpOncePerSession) {
  ASSERT_TRUE(CompilePolicy(node_, nullptr).ok());
  MakeChecks([](Settings&) {});
  auto before = NewSession("198.51.100.1");
  ASSERT_TRUE(Accepted(Ask(*before, CheckKind::kConnect)));
  // The network becomes a relay customer's; newdb swaps the compiled
  // policy in under the running checks.
  n_.Write("etc/smtp-policy.src", "[198.51.100.0]/24 relaycustnet +\n");
  ASSERT_TRUE(CompilePolicy(node_, nullptr).ok());
  // The running session keeps what it looked up at connect...
  EXPECT_EQ(Text(Ask(*before, CheckKind::kRcptTo, "u@elsewhere.test")),
            "554 5.7.1 <u@elsewhere.test>: Relay access denied");
  // ...a new one sees the new policy.
  auto after = NewSession("198.51.100.1");
  ASSERT_TRUE(Accepted(Ask(*after, CheckKind::kConnect)));
  EXPECT_TRUE(Accepted(Ask(*after, CheckKind::kRcptTo, "u@elsewhere.test")));
}

TEST_F(ChecksTest, TheDriversClientAttributesAreUsedUntilForgotten) {
  auto s = NewSession("198.51.100.1");
  // The driver's lookup wins over the checks' own: these are another
  // address's (rejectnet), so the connection is refused.
  checks_->SetClientAttrs(*s, std::make_shared<const PolicyAttrs>(
                                  settings_->policy.ForIp("203.0.113.66")));
  EXPECT_EQ(Text(Ask(*s, CheckKind::kConnect)), "554 5.7.1 no thanks");
  // Forgotten, the session's next connect looks its own address up.
  checks_->Forget(*s);
  EXPECT_TRUE(Accepted(Ask(*s, CheckKind::kConnect)));
}

TEST_F(ChecksTest, QuickOnlyWhenNothingCanBlock) {
  // No content filter, no resolver: the policy source is in memory.
  checks_ = MakePolicyChecks(settings_, CheckDeps{.node = &node_});
  auto s = NewSession("198.51.100.1");
  Check m;
  m.kind = CheckKind::kMessage;
  Check mail;
  mail.kind = CheckKind::kMailFrom;
  mail.arg = "a@elsewhere.test";
  Check data;
  data.kind = CheckKind::kData;
  EXPECT_TRUE(checks_->Quick(*s, data));
  // The client's attributes not yet known: the checks would look them up.
  EXPECT_FALSE(checks_->Quick(*s, m));
  checks_->SetClientAttrs(*s, std::make_shared<const PolicyAttrs>(
                                  settings_->policy.ForIp("198.51.100.1")));
  EXPECT_TRUE(checks_->Quick(*s, m));
  EXPECT_TRUE(checks_->Quick(*s, mail));
  Check auth;
  auth.kind = CheckKind::kAuth;
  EXPECT_FALSE(checks_->Quick(*s, auth));
  checks_->Forget(*s);
  EXPECT_FALSE(checks_->Quick(*s, m));

  // A content filter reads the file; a sender may be looked up in DNS.
  MakeChecks([](Settings&) {});
  auto f = NewSession("198.51.100.2");
  checks_->SetClientAttrs(*f, std::make_shared<const PolicyAttrs>(
                                  settings_->policy.ForIp("198.51.100.2")));
  EXPECT_FALSE(checks_->Quick(*f, m));
  EXPECT_FALSE(checks_->Quick(*f, mail));
  EXPECT_TRUE(checks_->Quick(*f, data));
}

TEST_F(ChecksTest, MaxOutSizeMeasuresTheMessageNotTheEnvelope) {
  n_.Write("etc/smtp-policy.src",
           "[198.51.100.0]/24 relaycustnet + maxoutsize 1000\n");
  MakeChecks([](Settings&) {});
  auto s = NewSession("198.51.100.1");
  ASSERT_TRUE(Accepted(Ask(*s, CheckKind::kConnect)));
  ASSERT_TRUE(Accepted(Ask(*s, CheckKind::kMailFrom, "a@example.net")));
  ASSERT_TRUE(Accepted(Ask(*s, CheckKind::kRcptTo, "u@elsewhere.test")));
  Check m;
  m.kind = CheckKind::kMessage;
  m.staged_path = "/nonexistent/staged";  // not read for the size
  m.message_size = 1000;
  EXPECT_TRUE(Accepted(checks_->Decide(*s, m)));
  m.message_size = 1001;
  EXPECT_EQ(Text(checks_->Decide(*s, m)),
            "552 5.3.4 Message size exceeds the limit for mail relayed from "
            "your network");
}

}  // namespace
}  // namespace zm::smtpserver
