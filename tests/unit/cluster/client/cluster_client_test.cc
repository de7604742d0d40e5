// The local-service client against an in-process fake agent on a UNIX
// socket: deadlines, absent agent, streams and their reconnection.
#include "cluster/client/cluster_client.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <fstream>

#include "tests/unit/cluster/client/fake_agent.h"
#include "tests/unit/testing/wait.h"

namespace zm::cluster {
namespace {

using testing::FakeAgent;

class ClusterClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/zm-cc-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    node_.home = tmpl;
    std::filesystem::create_directories(node_.etc());
    std::filesystem::create_directories(node_.run());
  }
  void TearDown() override { std::filesystem::remove_all(node_.home); }

  void WriteClusterConf() {
    std::ofstream(node_.etc_file("cluster.conf"))
        << "node-id a\ngossip-listen 127.0.0.1:7400\n";
  }
  ClientOptions Fast() {
    ClientOptions o;
    o.socket_path = SocketPath(node_);
    o.call_timeout_ms = 2000;
    o.backoff_initial_ms = 20;
    o.backoff_max_ms = 200;
    return o;
  }

  NodeDir node_;
};

TEST_F(ClusterClientTest, NoClusterConfIsFailedPrecondition) {
  EXPECT_FALSE(HasCluster(node_));
  auto c = ClusterClient::ForNode(node_);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(c.status().message().find("no cluster agent"), std::string::npos);
  EXPECT_FALSE(HasAgent(node_));
  // What `zmailer init` writes for a node on its own: a name, no gossip.
  // It runs a solo agent: not in a fleet, but a client all the same.
  std::ofstream(node_.etc_file("cluster.conf"))
      << "node-id a\n#gossip-listen 0.0.0.0:7400\n";
  EXPECT_FALSE(HasCluster(node_));
  EXPECT_TRUE(HasAgent(node_));
  EXPECT_TRUE(ClusterClient::ForNode(node_).ok());
  WriteClusterConf();
  EXPECT_TRUE(HasCluster(node_));
}

TEST_F(ClusterClientTest, SocketPathFollowsClusterConf) {
  std::ofstream(node_.etc_file("cluster.conf")) << "node-id a\n";
  EXPECT_EQ(SocketPath(node_), node_.run() + "/cluster.sock");
  std::ofstream(node_.etc_file("cluster.conf"))
      << "node-id a\nlocal-socket /tmp/zm-elsewhere.sock\n";
  EXPECT_EQ(SocketPath(node_), "/tmp/zm-elsewhere.sock");
  auto c = ClusterClient::ForNode(node_);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)->socket_path(), "/tmp/zm-elsewhere.sock");
}

TEST_F(ClusterClientTest, AbsentAgentIsUnavailableAtOnce) {
  WriteClusterConf();
  auto c = ClusterClient::ForNode(node_, Fast());
  ASSERT_TRUE(c.ok()) << c.status();
  auto m = (*c)->Members();
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(m.status().message().find("not running"), std::string::npos);
  v1::EtrnStatusRequest req;
  req.set_wait_ms(60000);  // must not wait for an absent agent
  EXPECT_EQ((*c)->EtrnStatus(req).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(ClusterClientTest, StaleSocketFileIsUnavailable) {
  WriteClusterConf();
  {
    FakeAgent agent(SocketPath(node_));
    ASSERT_TRUE(agent.Start());
  }
  // Whether or not the stopped agent left its socket file behind, the
  // call fails at once as Unavailable.
  auto c = ClusterClient::ForNode(node_, Fast());
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)->Members().status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(ClusterClientTest, UnaryCallsRoundTrip) {
  WriteClusterConf();
  FakeAgent agent(SocketPath(node_));
  ASSERT_TRUE(agent.Start());
  auto c = ClusterClient::ForNode(node_, Fast());
  ASSERT_TRUE(c.ok());
  auto m = (*c)->Members();
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->node_id(), "fake");

  v1::PolicyAddRequest add;
  add.set_subject("192.0.2.0/24");
  add.set_action(v1::POLICY_ACTION_REJECT);
  add.set_reason("spam run");
  ASSERT_TRUE((*c)->PolicyAdd(add).ok());
  auto list = (*c)->PolicyList({});
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->entries_size(), 1);
  EXPECT_EQ(list->entries(0).reason(), "spam run");

  // The agent's errors come back with their code.
  v1::PolicyDeleteRequest del;
  del.set_subject("198.51.100.1");
  auto d = (*c)->PolicyDelete(del);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kNotFound);
  v1::PolicyAddRequest empty;
  EXPECT_EQ((*c)->PolicyAdd(empty).status().code(),
            absl::StatusCode::kInvalidArgument);

  v1::ReportRatesRequest rr;
  v1::RateSlot* s = rr.add_slots();
  s->set_key("ip4:192.0.2.7");
  s->set_messages(3);
  ASSERT_TRUE((*c)->ReportRates(rr).ok());
  EXPECT_EQ(agent.reported().size(), 1u);

  v1::StartEtrnRequest etrn;
  etrn.set_domain("example.com");
  auto started = (*c)->StartEtrn(etrn);
  ASSERT_TRUE(started.ok());
  EXPECT_EQ(started->request().domain(), "example.com");
}

TEST_F(ClusterClientTest, PolicyStreamSnapshotThenChangesAndReconnects) {
  WriteClusterConf();
  auto agent = std::make_unique<FakeAgent>(SocketPath(node_));
  v1::PolicyEntry e;
  e.set_subject("example.net");
  e.set_action(v1::POLICY_ACTION_DEFER);
  agent->PutPolicy(e);
  ASSERT_TRUE(agent->Start());
  auto c = ClusterClient::ForNode(node_, Fast());
  ASSERT_TRUE(c.ok());

  absl::Mutex mu;
  std::vector<v1::PolicyUpdate> got;
  auto sub = (*c)->WatchPolicy([&](const v1::PolicyUpdate& u) {
    absl::MutexLock l(&mu);
    got.push_back(u);
  });
  auto count = [&] {
    absl::MutexLock l(&mu);
    return got.size();
  };
  ASSERT_TRUE(testutil::WaitFor([&] { return count() >= 1; }));
  {
    absl::MutexLock l(&mu);
    EXPECT_TRUE(got[0].snapshot());
    ASSERT_EQ(got[0].entries_size(), 1);
    EXPECT_EQ(got[0].entries(0).subject(), "example.net");
  }
  e.set_subject("example.org");
  agent->PutPolicy(e);
  ASSERT_TRUE(testutil::WaitFor([&] { return count() >= 2; }));
  EXPECT_TRUE(sub->connected());
  EXPECT_EQ(sub->connections(), 1u);

  // The agent restarts: the stream comes back by itself with a snapshot.
  agent->Stop();
  ASSERT_TRUE(testutil::WaitFor([&] { return !sub->connected(); }));
  agent = std::make_unique<FakeAgent>(SocketPath(node_));
  agent->PutPolicy(e);
  ASSERT_TRUE(agent->Start());
  ASSERT_TRUE(testutil::WaitFor([&] { return sub->connections() >= 2; }));
  ASSERT_TRUE(testutil::WaitFor([&] {
    absl::MutexLock l(&mu);
    return got.back().snapshot();
  }));
  // Dropping the subscription ends the stream even while the agent runs.
  sub.reset();
}

TEST_F(ClusterClientTest, RateStreamDeliversPeersAndSaysWhenItReconnects) {
  WriteClusterConf();
  auto agent = std::make_unique<FakeAgent>(SocketPath(node_));
  ASSERT_TRUE(agent->Start());
  auto c = ClusterClient::ForNode(node_, Fast());
  ASSERT_TRUE(c.ok());
  std::atomic<int> slots{0}, reconnects{0}, requests{0};
  auto sub = (*c)->WatchRates(
      [&] {
        ++requests;
        v1::WatchRatesRequest r;
        r.set_since_unix(1);
        return r;
      },
      [&](const v1::RateUpdate& u) { slots += u.slots_size(); },
      [&] { ++reconnects; });
  ASSERT_TRUE(testutil::WaitFor([&] { return sub->connected(); }));
  v1::RateSlot s;
  s.set_key("ip4:192.0.2.7");
  s.set_node_id("b");
  s.set_messages(4);
  agent->AddPeerSlots({s, s});
  ASSERT_TRUE(testutil::WaitFor([&] { return slots.load() == 2; }));
  EXPECT_EQ(reconnects.load(), 0);
  agent->Stop();
  agent = std::make_unique<FakeAgent>(SocketPath(node_));
  ASSERT_TRUE(agent->Start());
  ASSERT_TRUE(testutil::WaitFor([&] { return reconnects.load() == 1; }));
  EXPECT_GE(requests.load(), 2);
}

TEST_F(ClusterClientTest, SubscriptionWithoutAgentStopsPromptly) {
  WriteClusterConf();
  auto c = ClusterClient::ForNode(node_, Fast());
  ASSERT_TRUE(c.ok());
  auto sub = (*c)->WatchPolicy([](const v1::PolicyUpdate&) {});
  EXPECT_FALSE(sub->connected());
  sub.reset();  // joins; a hang here fails the test by its timeout
}

}  // namespace
}  // namespace zm::cluster
