// The smtpserver's fleet link and the policy checks that use it, against
// an in-process fake agent: rate slots both ways (fleet-wide limits), the
// policy overlay before the static policy, over-limit DEFER entries and
// cluster-wide ETRN. Ends with the decision-latency figure (printed, not
// asserted).
#include "node/smtpserver/smtpserver_fleet.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>

#include "node/smtp/session.h"
#include "node/smtpserver/smtpserver_checks.h"
#include "node/smtpserver/smtpserver_policy.h"
#include "tests/unit/cluster/client/fake_agent.h"
#include "tests/unit/smtpserver/policy_testing.h"
#include "tests/unit/testing/wait.h"

namespace zm::smtpserver {
namespace {

using cluster::testing::FakeAgent;
using smtp::Check;
using smtp::CheckKind;
using smtp::Verdict;
namespace v1 = ::zmnode::cluster::v1;

constexpr char kSrc[] = R"(
[192.0.2.0]/24       relaycustnet + fulltrustnet +
[198.51.100.0]/24    ratelimitmsgs 3
[203.0.113.66]       rejectnet + message "static no"
)";

int64_t Now() { return static_cast<int64_t>(std::time(nullptr)); }

class FleetLinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    n_.Write("etc/smtp-policy.src", kSrc);
    n_.Write("etc/cluster.conf", "node-id a\ngossip-listen 127.0.0.1:7400\n");
    std::filesystem::create_directories(node_.run());
    agent_ = std::make_unique<FakeAgent>(cluster::SocketPath(node_));
    ASSERT_TRUE(agent_->Start());
    rates_ = ratetrack::RateTracker::InMemory("a", window_);
    Link(0);
  }
  void TearDown() override {
    checks_.reset();
    fleet_.reset();
    agent_.reset();
  }

  void Link(int defer_sec) {
    checks_.reset();
    fleet_.reset();
    cluster::ClientOptions co;
    co.backoff_initial_ms = 20;
    co.backoff_max_ms = 200;
    auto client = cluster::ClusterClient::ForNode(node_, co);
    ASSERT_TRUE(client.ok()) << client.status();
    FleetOptions fo;
    fo.node_id = "a";
    fo.window = window_;
    fo.report_interval_ms = 20;
    fo.defer_over_limit_sec = defer_sec;
    fo.etrn_wait_ms = 100;
    fleet_ = FleetLink::Start(std::move(*client), *rates_, nullptr, fo);
    auto s = std::make_shared<Settings>();
    auto p = Policy::Load(node_);
    ASSERT_TRUE(p.ok()) << p.status();
    s->policy = *p;
    s->domains.Add("example.net");
    s->session.hostname = "mx.example.net";
    settings_ = s;
    CheckDeps deps;
    deps.node = &node_;
    deps.rates = rates_.get();
    deps.fleet = fleet_.get();
    checks_ = MakePolicyChecks(settings_, deps);
    ASSERT_TRUE(testutil::WaitFor([&] {
      return fleet_->policy_connected() && fleet_->rates_connected();
    }));
  }

  std::unique_ptr<smtp::Session> NewSession(std::string addr) {
    smtp::ClientInfo ci;
    ci.addr = std::move(addr);
    ci.port = std::to_string(++port_);
    ci.local_addr = "192.0.2.250";
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
  // A peer entry, and a wait until this process sees it.
  void PeerPolicy(const std::string& subject, v1::PolicyAction action,
                  const std::string& reason, int64_t expires_ms = 0) {
    v1::PolicyEntry e;
    e.set_subject(subject);
    e.set_action(action);
    e.set_reason(reason);
    e.set_author_node("b");
    e.set_expires_unix_ms(expires_ms);
    size_t before = fleet_->overlay().size();
    agent_->PutPolicy(e);
    ASSERT_TRUE(testutil::WaitFor(
        [&] { return fleet_->overlay().size() > before; }));
  }
  uint64_t ReportedMessages(const std::string& key) {
    uint64_t best = 0;
    for (const auto& s : agent_->reported()) {
      if (s.key() == key && s.node_id() == "a") {
        best = std::max<uint64_t>(best, s.messages());
      }
    }
    return best;
  }

  testing::ScratchNode n_;
  NodeDir node_ = n_.node();
  ratetrack::RateWindow window_{.slots = 8, .slot_seconds = 450};
  std::unique_ptr<FakeAgent> agent_;
  std::unique_ptr<ratetrack::RateTracker> rates_;
  std::unique_ptr<FleetLink> fleet_;
  std::shared_ptr<Settings> settings_;
  std::unique_ptr<smtp::Checks> checks_;
  int port_ = 40000;
};

TEST_F(FleetLinkTest, ReportsLocalSlotsAsTheyChange) {
  const std::string key = "ip4:198.51.100.1";
  rates_->Add(key, {.messages = 1, .recipients = 2}, Now());
  ASSERT_TRUE(testutil::WaitFor([&] { return ReportedMessages(key) == 1; }));
  rates_->Add(key, {.messages = 1, .recipients = 1}, Now());
  ASSERT_TRUE(testutil::WaitFor([&] { return ReportedMessages(key) == 2; }));
  // The link counts a report once the agent's answer is back, which may
  // be just after the agent has stored it.
  EXPECT_TRUE(testutil::WaitFor([&] { return fleet_->reports() >= 2u; }))
      << fleet_->reports();
}

TEST_F(FleetLinkTest, AgentRestartGetsTheWholeWindowAgain) {
  const std::string key = "ip4:198.51.100.2";
  rates_->Add(key, {.messages = 2}, Now());
  ASSERT_TRUE(testutil::WaitFor([&] { return ReportedMessages(key) == 2; }));
  agent_->Stop();
  agent_ = std::make_unique<FakeAgent>(cluster::SocketPath(node_));
  ASSERT_TRUE(agent_->Start());
  // Nothing changed locally, yet the new agent learns the slot.
  ASSERT_TRUE(testutil::WaitFor([&] { return ReportedMessages(key) == 2; }));
}

TEST_F(FleetLinkTest, PeersCountTowardsTheLimit) {
  const std::string key = "ip4:198.51.100.7";
  auto s = NewSession("198.51.100.7");
  ASSERT_EQ(Ask(*s, CheckKind::kConnect).outcome, Verdict::Outcome::kAccept);
  rates_->Add(key, {.messages = 1}, Now());
  EXPECT_EQ(Ask(*s, CheckKind::kMailFrom, "x@example.org").outcome,
            Verdict::Outcome::kAccept);
  // Two more from the same source on node b: 3 in the window, limit 3.
  v1::RateSlot peer;
  peer.set_key(key);
  peer.set_node_id("b");
  peer.set_generation(7);
  peer.set_slot_start(Now() / 450 * 450);
  peer.set_messages(2);
  agent_->AddPeerSlots({peer, peer});  // twice: merging is idempotent
  ASSERT_TRUE(testutil::WaitFor(
      [&] { return rates_->Get(key, Now()).messages == 3; }));
  Verdict v = Ask(*s, CheckKind::kMailFrom, "x@example.org");
  EXPECT_EQ(Text(v),
            "450 4.7.1 You are sending too much mail per time interval. "
            "Try again later.");
  // Our own slots echoed back change nothing.
  peer.set_node_id("a");
  peer.set_messages(50);
  agent_->AddPeerSlots({peer});
  v1::RateSlot other = peer;
  other.set_node_id("c");
  other.set_messages(1);
  agent_->AddPeerSlots({other});
  ASSERT_TRUE(testutil::WaitFor(
      [&] { return rates_->Get(key, Now()).messages == 4; }));
}

TEST_F(FleetLinkTest, OverlayComesBeforeTheStaticPolicy) {
  PeerPolicy("192.0.2.9", v1::POLICY_ACTION_REJECT, "blocked fleet-wide");
  auto s = NewSession("192.0.2.9");  // a trusted network in the static policy
  Verdict v = Ask(*s, CheckKind::kConnect);
  EXPECT_EQ(Text(v), "554 5.7.1 blocked fleet-wide");
  EXPECT_TRUE(v.close);

  PeerPolicy("198.51.100.64/26", v1::POLICY_ACTION_DEFER, "");
  v = Ask(*NewSession("198.51.100.70"), CheckKind::kConnect);
  EXPECT_EQ(v.reply->code, 421);
  EXPECT_EQ(v.reply->enhanced, "4.7.1");
  EXPECT_TRUE(Ask(*NewSession("198.51.100.1"), CheckKind::kConnect).outcome ==
              Verdict::Outcome::kAccept);

  // Allow lifts the static rejectnet.
  EXPECT_EQ(Ask(*NewSession("203.0.113.66"), CheckKind::kConnect).reply->code,
            554);
  PeerPolicy("203.0.113.66", v1::POLICY_ACTION_ALLOW, "partner");
  EXPECT_EQ(Ask(*NewSession("203.0.113.66"), CheckKind::kConnect).outcome,
            Verdict::Outcome::kAccept);

  // Senders and recipients.
  PeerPolicy("spam.example", v1::POLICY_ACTION_REJECT, "no spam");
  PeerPolicy("slow@example.org", v1::POLICY_ACTION_DEFER, "later");
  PeerPolicy("victim@example.net", v1::POLICY_ACTION_REJECT, "gone");
  PeerPolicy(".frozen.example", v1::POLICY_ACTION_FREEZE, "");
  auto m = NewSession("192.0.2.5");
  ASSERT_EQ(Ask(*m, CheckKind::kConnect).outcome, Verdict::Outcome::kAccept);
  EXPECT_EQ(Text(Ask(*m, CheckKind::kMailFrom, "a@spam.example")),
            "550 5.7.1 <a@spam.example>: no spam");
  EXPECT_EQ(Text(Ask(*m, CheckKind::kMailFrom, "slow@example.org")),
            "450 4.7.1 <slow@example.org>: later");
  EXPECT_EQ(Ask(*m, CheckKind::kMailFrom, "a@x.frozen.example").outcome,
            Verdict::Outcome::kAccept);
  EXPECT_EQ(Text(Ask(*m, CheckKind::kRcptTo, "victim@example.net")),
            "550 5.7.1 <victim@example.net>: gone");
  Check msg;
  msg.kind = CheckKind::kMessage;
  Verdict f = checks_->Decide(*m, msg);
  EXPECT_EQ(f.outcome, Verdict::Outcome::kFreeze);
  EXPECT_NE(f.freeze_reason.find(".frozen.example"), std::string::npos);

  // Expired entries are ignored.
  PeerPolicy("198.51.100.3", v1::POLICY_ACTION_REJECT, "old", 1000);
  EXPECT_EQ(Ask(*NewSession("198.51.100.3"), CheckKind::kConnect).outcome,
            Verdict::Outcome::kAccept);
}

TEST_F(FleetLinkTest, RateClassReplacesTheStaticLimit) {
  v1::PolicyEntry e;
  e.set_subject("198.51.100.0/24");
  e.set_action(v1::POLICY_ACTION_RATE_CLASS);
  e.set_rate_class("1");
  agent_->PutPolicy(e);
  ASSERT_TRUE(testutil::WaitFor([&] { return fleet_->overlay().size() == 1; }));
  auto s = NewSession("198.51.100.8");
  rates_->Add("ip4:198.51.100.8", {.messages = 1}, Now());
  EXPECT_EQ(Ask(*s, CheckKind::kMailFrom, "x@example.org").reply->code, 450);
}

TEST_F(FleetLinkTest, ReportsTheLimitOfACheckedSource) {
  // The static policy's ratelimitmsgs 3 for 198.51.100.0/24.
  auto s = NewSession("198.51.100.9");
  Verdict v = Ask(*s, CheckKind::kMailFrom, "x@example.org");
  EXPECT_TRUE(!v.reply || v.reply->code < 400) << Text(v);
  ASSERT_TRUE(testutil::WaitFor(
      [&] { return agent_->limits().count("ip4:198.51.100.9") == 1; }));
  v1::SourceLimit l = agent_->limits()["ip4:198.51.100.9"];
  EXPECT_EQ(l.messages(), 3);
  EXPECT_EQ(l.rate_class(), "");
  // A fleet rate class replaces it, and the new limit is reported.
  v1::PolicyEntry e;
  e.set_subject("198.51.100.0/24");
  e.set_action(v1::POLICY_ACTION_RATE_CLASS);
  e.set_rate_class("7");
  agent_->PutPolicy(e);
  ASSERT_TRUE(testutil::WaitFor([&] { return fleet_->overlay().size() == 1; }));
  Ask(*s, CheckKind::kMailFrom, "x@example.org");
  ASSERT_TRUE(testutil::WaitFor([&] {
    return agent_->limits()["ip4:198.51.100.9"].messages() == 7;
  }));
  EXPECT_EQ(agent_->limits()["ip4:198.51.100.9"].rate_class(), "fleet 7");
  // A source without a limit is not reported.
  auto free = NewSession("192.0.2.77");
  Ask(*free, CheckKind::kMailFrom, "x@example.org");
  EXPECT_EQ(agent_->limits().count("ip4:192.0.2.77"), 0u);
}

TEST_F(FleetLinkTest, OverLimitPublishesATemporaryDefer) {
  Link(600);
  auto s = NewSession("198.51.100.9");
  rates_->Add("ip4:198.51.100.9", {.messages = 3}, Now());
  EXPECT_EQ(Ask(*s, CheckKind::kMailFrom, "x@example.org").reply->code, 450);
  EXPECT_EQ(Ask(*s, CheckKind::kMailFrom, "x@example.org").reply->code, 450);
  ASSERT_TRUE(testutil::WaitFor(
      [&] { return agent_->policies().count("198.51.100.9") == 1; }));
  v1::PolicyEntry e = agent_->policies().at("198.51.100.9");
  EXPECT_EQ(e.action(), v1::POLICY_ACTION_DEFER);
  EXPECT_GT(e.expires_unix_ms(), 0);
  EXPECT_NE(e.reason().find("over the fleet rate limit"), std::string::npos);
  // It comes back through the stream: the next connection is deferred.
  ASSERT_TRUE(testutil::WaitFor([&] {
    return fleet_->overlay().ForIp("198.51.100.9", Now() * 1000).has_value();
  }));
  EXPECT_EQ(Ask(*NewSession("198.51.100.9"), CheckKind::kConnect).reply->code,
            421);
}

TEST_F(FleetLinkTest, OverLimitIsOffByDefault) {
  auto s = NewSession("198.51.100.10");
  rates_->Add("ip4:198.51.100.10", {.messages = 3}, Now());
  EXPECT_EQ(Ask(*s, CheckKind::kMailFrom, "x@example.org").reply->code, 450);
  rates_->Add("ip4:198.51.100.11", {.messages = 1}, Now());
  ASSERT_TRUE(testutil::WaitFor(
      [&] { return ReportedMessages("ip4:198.51.100.11") == 1; }));
  EXPECT_TRUE(agent_->policies().empty());
}

TEST_F(FleetLinkTest, EtrnIsClusterWideWithAReplyLinePerNode) {
  v1::EtrnResult a, b;
  a.set_node_id("b");
  a.set_code(250);
  a.set_text("Queuing for node example.net started");
  b.set_node_id("a");
  b.set_code(458);
  b.set_text("Unable to queue messages for example.net");
  agent_->SetEtrnResults({a, b}, {"c"});
  auto s = NewSession("192.0.2.5");
  ASSERT_EQ(Ask(*s, CheckKind::kConnect).outcome, Verdict::Outcome::kAccept);
  Verdict v = Ask(*s, CheckKind::kEtrn, "example.net");
  ASSERT_TRUE(v.reply.has_value());
  EXPECT_EQ(v.reply->code, 250);
  ASSERT_EQ(v.reply->lines.size(), 4u);
  EXPECT_EQ(v.reply->lines[0], "a: 458 Unable to queue messages for example.net");
  EXPECT_EQ(v.reply->lines[1], "b: 250 Queuing for node example.net started");
  EXPECT_EQ(v.reply->lines[2],
            "c: no answer yet (acts when it sees the request)");
  EXPECT_EQ(v.reply->lines[3], "ETRN-cluster operation(s) complete");
  EXPECT_EQ(agent_->etrn_domains(), std::vector<std::string>{"example.net"});
  // Refusals stay local decisions.
  EXPECT_EQ(Ask(*s, CheckKind::kEtrn, "#queue").reply->code, 458);
}

TEST_F(FleetLinkTest, EtrnWithoutAgentIsLocal) {
  agent_->Stop();
  auto s = NewSession("192.0.2.5");
  ASSERT_EQ(Ask(*s, CheckKind::kConnect).outcome, Verdict::Outcome::kAccept);
  // No scheduler runs here either: the local path's own refusal.
  Verdict v = Ask(*s, CheckKind::kEtrn, "example.net");
  EXPECT_EQ(Text(v), "458 4.3.0 Unable to queue messages for node example.net");
  EXPECT_TRUE(agent_->etrn_domains().empty());
}

// The figure for docs/cluster.md: a MAIL FROM decision (fleet overlay with
// 1,000 entries + 100 networks, rate limit over local + 2 peers' slots).
TEST_F(FleetLinkTest, DecisionLatencyFigure) {
  for (int i = 0; i < 1100; ++i) {
    v1::PolicyEntry e;
    e.set_subject(i < 1000 ? "10." + std::to_string(i / 250) + "." +
                                 std::to_string(i % 250) + ".1"
                           : "172.16." + std::to_string(i - 1000) + ".0/24");
    e.set_action(i < 1000 ? v1::POLICY_ACTION_DEFER
                          : v1::POLICY_ACTION_REJECT);
    agent_->PutPolicy(e);
  }
  ASSERT_TRUE(
      testutil::WaitFor([&] { return fleet_->overlay().size() == 1100; }));
  std::vector<ratetrack::SlotCount> peers;
  for (int i = 0; i < 2000; ++i) {
    for (const char* node : {"b", "c"}) {
      peers.push_back({"ip4:198.51.100." + std::to_string(i % 250), node,
                       Now() / 450 * 450, {.messages = 0, .recipients = 1}});
    }
  }
  rates_->MergePeer(peers);
  auto s = NewSession("198.51.100.20");
  ASSERT_EQ(Ask(*s, CheckKind::kConnect).outcome, Verdict::Outcome::kAccept);
  constexpr int kRuns = 20000;
  std::vector<double> us;
  us.reserve(kRuns);
  for (int i = 0; i < kRuns; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    Verdict v = Ask(*s, CheckKind::kMailFrom, "someone@example.org");
    auto t1 = std::chrono::steady_clock::now();
    ASSERT_EQ(v.outcome, Verdict::Outcome::kAccept);
    us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  std::sort(us.begin(), us.end());
  std::printf("fleet MAIL FROM decision: p50 %.1f us, p99 %.1f us (%d runs)\n",
              us[kRuns / 2], us[kRuns * 99 / 100], kRuns);
  RecordProperty("p99_us", std::to_string(us[kRuns * 99 / 100]));
}

}  // namespace
}  // namespace zm::smtpserver
