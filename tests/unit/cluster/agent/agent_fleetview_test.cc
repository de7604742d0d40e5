// The local service's fleet views (TopSources, PublishNodeStatus /
// FleetStatus, AgentStats, Members' detail, PolicyList with tombstones)
// through real agents on loopback, and an agent alone (solo: no peer
// service) answering the same calls.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <ctime>
#include <map>
#include <memory>
#include <string>

#include "cluster/agent/agent.h"
#include "cluster/agent/source_book.h"
#include "node/common/log.h"
#include "tests/unit/testing/wait.h"
#include "zmnode/cluster/v1/local.grpc.pb.h"

namespace zm::cluster {
namespace {

namespace pb = ::zmnode::cluster::v1;
using testutil::WaitFor;

class FleetViewTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/zm-fleetview-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    log_ = std::make_unique<Logger>("clusterd", dir_ + "/maillog", false);
  }
  void TearDown() override {
    for (auto& [id, a] : agents_) a->Stop(false);
    agents_.clear();
    log_.reset();
    (void)std::system(("rm -rf " + dir_).c_str());
  }

  AgentOptions Options(const std::string& id, bool solo = false) {
    AgentOptions o;
    o.node_id = id;
    o.version = "test-1";
    if (!solo) o.listen = "127.0.0.1:0";
    o.gossip_interval_ms = 100;
    o.membership.probe_interval_ms = 200;
    o.membership.probe_timeout_ms = 100;
    o.membership.rejoin_interval_ms = 500;
    o.seed_refresh_ms = 1000;
    o.local_socket = dir_ + "/" + id + ".sock";
    o.security.server = grpc::InsecureServerCredentials();
    o.security.channel = grpc::InsecureChannelCredentials();
    o.etrn = [](const std::string&) { return EtrnOutcome{250, "ok"}; };
    return o;
  }

  Agent& StartAgent(AgentOptions o) {
    std::string id = o.node_id;
    auto a = Agent::Start(std::move(o), *log_);
    EXPECT_TRUE(a.ok()) << a.status();
    agents_[id] = *std::move(a);
    return *agents_[id];
  }

  void StartPair() {
    StartAgent(Options("n1"));
    AgentOptions o = Options("n2");
    o.seeds = {"127.0.0.1:" + std::to_string(agents_["n1"]->peer_port())};
    StartAgent(std::move(o));
  }

  std::unique_ptr<pb::Local::Stub> Local(const std::string& id) {
    return pb::Local::NewStub(grpc::CreateChannel(
        "unix:" + dir_ + "/" + id + ".sock",
        grpc::InsecureChannelCredentials()));
  }

  static void Report(pb::Local::Stub& local, const std::string& key,
                     uint64_t messages, int64_t limit = 0) {
    pb::ReportRatesRequest req;
    pb::RateSlot* s = req.add_slots();
    int64_t now = std::time(nullptr);
    s->set_key(key);
    s->set_slot_start(now - now % 450);
    s->set_messages(messages);
    s->set_recipients(messages);
    if (limit != 0) {
      pb::SourceLimit* l = req.add_limits();
      l->set_key(key);
      l->set_rate_class("clients");
      l->set_messages(limit);
    }
    grpc::ClientContext ctx;
    pb::ReportRatesReply reply;
    ASSERT_TRUE(local.ReportRates(&ctx, req, &reply).ok());
  }

  std::string dir_;
  std::unique_ptr<Logger> log_;
  std::map<std::string, std::unique_ptr<Agent>> agents_;
};

TEST_F(FleetViewTest, TopSourcesSumsNodesWithLimitStateAndSpark) {
  StartPair();
  auto l1 = Local("n1"), l2 = Local("n2");
  // The first report shows the key (it is then tracked); what grows after
  // counts in the current minute.
  Report(*l1, "ip4:192.0.2.7", 1, 10);
  pb::TopSourcesRequest req;
  req.set_kind("ip");
  {
    grpc::ClientContext ctx;
    pb::TopSourcesReply r;
    ASSERT_TRUE(l1->TopSources(&ctx, req, &r).ok());
  }
  Report(*l1, "ip4:192.0.2.7", 6, 10);
  Report(*l2, "ip4:192.0.2.7", 5);
  Report(*l2, "user:alice", 50);
  pb::TopSourcesReply reply;
  ASSERT_TRUE(WaitFor([&] {
    grpc::ClientContext ctx;
    reply.Clear();
    if (!l1->TopSources(&ctx, req, &reply).ok()) return false;
    return reply.sources_size() == 1 && reply.sources(0).count() == 11;
  })) << reply.ShortDebugString();
  const pb::TopSource& s = reply.sources(0);
  EXPECT_EQ(s.key(), "ip4:192.0.2.7");
  EXPECT_EQ(s.kind(), "ip");
  EXPECT_EQ(s.limit(), 10u);
  EXPECT_EQ(s.rate_class(), "clients");
  EXPECT_EQ(s.state(), "deferred");  // 11 over a deferring limit of 10
  ASSERT_EQ(s.nodes_size(), 2);
  EXPECT_EQ(s.nodes(0).node_id(), "n1");
  EXPECT_EQ(s.nodes(0).count(), 6u);
  EXPECT_EQ(s.nodes(1).count(), 5u);
  ASSERT_EQ(s.spark_size(), 60);
  uint64_t sparked = 0;
  for (uint64_t n : s.spark()) sparked += n;
  EXPECT_GE(sparked, 5u);  // n1's growth after it was tracked at least
  EXPECT_LE(sparked, 11u);
  EXPECT_EQ(reply.window_s(), 8u * 450);

  // Every kind, a filter, and a fleet policy entry that blocks the source.
  req.set_kind("all");
  req.set_filter("alice");
  {
    grpc::ClientContext ctx;
    pb::TopSourcesReply r;
    ASSERT_TRUE(l1->TopSources(&ctx, req, &r).ok());
    ASSERT_EQ(r.sources_size(), 1) << r.ShortDebugString();
    EXPECT_EQ(r.sources(0).kind(), "user");
    EXPECT_EQ(r.sources(0).state(), "ok");
  }
  pb::PolicyAddRequest add;
  add.set_subject("192.0.2.0/24");
  add.set_action(pb::POLICY_ACTION_REJECT);
  {
    grpc::ClientContext ctx;
    pb::PolicyReply r;
    ASSERT_TRUE(l2->PolicyAdd(&ctx, add, &r).ok());
  }
  req.set_filter("192.0.2.");
  EXPECT_TRUE(WaitFor([&] {
    grpc::ClientContext ctx;
    pb::TopSourcesReply r;
    return l1->TopSources(&ctx, req, &r).ok() && r.sources_size() == 1 &&
           r.sources(0).state() == "blocked";
  }));
  req.set_kind("mx");
  grpc::ClientContext ctx;
  pb::TopSourcesReply r;
  EXPECT_EQ(l1->TopSources(&ctx, req, &r).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(FleetViewTest, NodeStatusReachesEveryNodeAndMembersShowIt) {
  StartPair();
  auto l1 = Local("n1"), l2 = Local("n2");
  pb::PublishNodeStatusRequest pub;
  pub.mutable_status()->set_admin_url("http://127.0.0.1:18025/");
  pub.mutable_status()->set_zm_version("test-1");
  pub.mutable_status()->mutable_queue()->set_messages(12);
  {
    grpc::ClientContext ctx;
    pb::PublishNodeStatusReply r;
    ASSERT_TRUE(l2->PublishNodeStatus(&ctx, pub, &r).ok());
    EXPECT_EQ(r.status().node_id(), "n2");
    EXPECT_GT(r.status().version(), 0u);
  }
  pb::FleetStatusReply fleet;
  ASSERT_TRUE(WaitFor([&] {
    grpc::ClientContext ctx;
    fleet.Clear();
    return l1->FleetStatus(&ctx, pb::FleetStatusRequest(), &fleet).ok() &&
           fleet.statuses_size() == 1;
  }));
  EXPECT_EQ(fleet.node_id(), "n1");
  EXPECT_EQ(fleet.statuses(0).node_id(), "n2");
  EXPECT_EQ(fleet.statuses(0).queue().messages(), 12u);

  pb::MembersReply members;
  ASSERT_TRUE(WaitFor([&] {
    grpc::ClientContext ctx;
    members.Clear();
    if (!l1->Members(&ctx, pb::MembersRequest(), &members).ok()) return false;
    for (const auto& m : members.members()) {
      if (m.member().node_id() == "n2" && m.state() == "alive" &&
          m.admin_url() == "http://127.0.0.1:18025/") {
        return true;
      }
    }
    return false;
  })) << members.ShortDebugString();
  for (const auto& m : members.members()) {
    EXPECT_GE(m.uptime_ms(), 0);
    EXPECT_EQ(m.member().version(), "test-1");
  }

  pb::AgentStatsReply stats;
  ASSERT_TRUE(WaitFor([&] {
    grpc::ClientContext ctx;
    stats.Clear();
    return l1->AgentStats(&ctx, pb::AgentStatsRequest(), &stats).ok() &&
           stats.propagation_count() >= 1;
  })) << stats.ShortDebugString();
  EXPECT_FALSE(stats.solo());
  EXPECT_EQ(stats.members_alive(), 2u);
  EXPECT_GT(stats.gossip_bytes_sent(), 0u);
  EXPECT_GT(stats.records_merged(), 0u);
  EXPECT_EQ(stats.node_statuses(), 1u);
  EXPECT_GE(stats.propagation_max_ms(), stats.propagation_last_ms());
}

// An idle node's history shifts every minute without saying anything new
// (readers take a missing minute as 0): such a publication is not written
// again, so it costs the fleet no gossip; a new count is written.
TEST_F(FleetViewTest, AnIdleHistoryShiftIsNotWrittenAgain) {
  StartPair();
  auto l1 = Local("n1");
  auto publish = [&](int64_t first_minute, std::vector<uint64_t> received) {
    pb::PublishNodeStatusRequest pub;
    pub.mutable_status()->mutable_queue()->set_messages(3);
    pb::NodeHistory* h = pub.mutable_status()->mutable_history();
    h->set_first_minute_unix(first_minute);
    for (uint64_t r : received) {  // six series of equal length
      h->add_received(r);
      h->add_delivered(0);
      h->add_deferred(0);
      h->add_bounced(0);
      h->add_rejected_policy(0);
      h->add_rejected_rate(0);
    }
    grpc::ClientContext ctx;
    pb::PublishNodeStatusReply r;
    grpc::Status s = l1->PublishNodeStatus(&ctx, pub, &r);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return r.status().version();
  };
  const int64_t m0 = 1795219200;  // a minute boundary
  const uint64_t v1 = publish(m0, {0, 5, 0, 0});
  EXPECT_EQ(publish(m0 + 60, {5, 0, 0, 0}), v1);   // shifted, zeros after
  EXPECT_EQ(publish(m0 + 120, {0, 0, 0, 0}), v1);  // 5 fell out of the window
  EXPECT_GT(publish(m0 + 120, {0, 0, 0, 7}), v1);  // news: written
}

TEST_F(FleetViewTest, PolicyListIncludesTombstonesWhenAsked) {
  StartAgent(Options("solo", /*solo=*/true));
  auto l = Local("solo");
  pb::PolicyAddRequest add;
  add.set_subject("192.0.2.9");
  add.set_action(pb::POLICY_ACTION_DEFER);
  pb::PolicyDeleteRequest del;
  del.set_subject("192.0.2.9");
  {
    grpc::ClientContext c1, c2;
    pb::PolicyReply r;
    ASSERT_TRUE(l->PolicyAdd(&c1, add, &r).ok());
    ASSERT_TRUE(l->PolicyDelete(&c2, del, &r).ok());
  }
  pb::PolicyListRequest list;
  pb::PolicyReply live, all;
  grpc::ClientContext c1, c2;
  ASSERT_TRUE(l->PolicyList(&c1, list, &live).ok());
  EXPECT_EQ(live.entries_size(), 0);
  list.set_include_deleted(true);
  ASSERT_TRUE(l->PolicyList(&c2, list, &all).ok());
  ASSERT_EQ(all.entries_size(), 1);
  EXPECT_TRUE(all.entries(0).deleted());
}

TEST_F(FleetViewTest, ASoloAgentAnswersForItsNode) {
  Agent& a = StartAgent(Options("solo", /*solo=*/true));
  EXPECT_EQ(a.peer_port(), 0);
  auto l = Local("solo");
  Report(*l, "ip6:2001:db8:1:2::/64", 3);
  grpc::ClientContext c1, c2, c3;
  pb::TopSourcesRequest req;
  req.set_kind("net64");
  pb::TopSourcesReply top;
  ASSERT_TRUE(l->TopSources(&c1, req, &top).ok());
  ASSERT_EQ(top.sources_size(), 1);
  EXPECT_EQ(top.sources(0).count(), 3u);
  pb::MembersReply members;
  ASSERT_TRUE(l->Members(&c2, pb::MembersRequest(), &members).ok());
  ASSERT_EQ(members.members_size(), 1);
  EXPECT_TRUE(members.members(0).self());
  EXPECT_EQ(members.members(0).state(), "alive");
  pb::AgentStatsReply stats;
  ASSERT_TRUE(l->AgentStats(&c3, pb::AgentStatsRequest(), &stats).ok());
  EXPECT_TRUE(stats.solo());
  EXPECT_EQ(stats.members_alive(), 1u);
  EXPECT_EQ(stats.gossip_bytes_sent(), 0u);
}

// The source book alone: growth per minute, bounded tracking.
TEST(SourceBookTest, CountsGrowthOfTrackedKeysPerMinute) {
  SourceBook book({.max_tracked = 2, .max_limits = 2, .minutes = 60});
  const int64_t t0 = 1795219200;  // a minute boundary
  auto slot = [](std::string key, std::string node, uint64_t n) {
    pb::RateSlot s;
    s.set_key(std::move(key));
    s.set_node_id(std::move(node));
    s.set_generation(1);
    s.set_slot_start(1795219200);
    s.set_messages(n);
    return s;
  };
  // a had 5 before it was tracked: not counted.
  book.Track({"a", "b", "c"}, {slot("a", "n1", 5)}, t0);
  EXPECT_EQ(book.tracked(), 2u);
  EXPECT_FALSE(book.Tracked("c"));
  book.OnRates({slot("a", "n1", 7), slot("a", "n2", 1), slot("c", "n1", 9)},
               t0 + 10);
  book.OnRates({slot("a", "n1", 7)}, t0 + 20);  // no growth
  book.OnRates({slot("a", "n1", 10)}, t0 + 70);
  auto spark = book.Spark("a", t0 + 70);
  ASSERT_EQ(spark.size(), 60u);
  EXPECT_EQ(spark[58], 3u);  // 2 from n1, 1 from n2
  EXPECT_EQ(spark[59], 3u);
  EXPECT_EQ(book.Spark("c", t0 + 70)[59], 0u);
  // An hour on, the old minutes are gone.
  EXPECT_EQ(book.Spark("a", t0 + 3700)[0], 0u);
  // Limits: the least recently set goes first.
  for (std::string k : {"x", "y", "z"}) {
    pb::SourceLimit l;
    l.set_key(k);
    l.set_messages(100);
    book.SetLimit(l);
  }
  EXPECT_FALSE(book.Limit("x"));
  EXPECT_TRUE(book.Limit("z"));
}

}  // namespace
}  // namespace zm::cluster
