// The cluster agent in process: several agents on loopback (plain gRPC;
// the mTLS fleet is tested with real processes in
// tests/integration/test_cluster.py) talking through their real services.
#include "cluster/agent/agent.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <zlib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "node/common/fs.h"
#include "node/common/log.h"
#include "tests/unit/testing/wait.h"
#include "zmnode/cluster/v1/local.grpc.pb.h"
#include "zmnode/cluster/v1/peer.grpc.pb.h"

namespace zm::cluster {
namespace {

namespace pb = ::zmnode::cluster::v1;
using testutil::WaitFor;

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/zm-agent-test-XXXXXX";
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

  AgentOptions Options(const std::string& id) {
    AgentOptions o;
    o.node_id = id;
    o.version = "test";
    o.listen = "127.0.0.1:0";
    o.gossip_interval_ms = 100;
    o.membership.probe_interval_ms = 200;
    o.membership.probe_timeout_ms = 100;
    o.membership.rejoin_interval_ms = 500;
    o.seed_refresh_ms = 1000;
    o.local_socket = dir_ + "/" + id + ".sock";
    o.security.server = grpc::InsecureServerCredentials();
    o.security.channel = grpc::InsecureChannelCredentials();
    o.etrn = [this, id](const std::string& domain) {
      absl::MutexLock l(&mu_);
      ++etrn_runs_[id + " " + domain];
      return EtrnOutcome{250, "ETRN " + domain + " started on " + id};
    };
    return o;
  }

  Agent& StartAgent(AgentOptions o) {
    std::string id = o.node_id;
    auto a = Agent::Start(std::move(o), *log_);
    EXPECT_TRUE(a.ok()) << a.status();
    agents_[id] = *std::move(a);
    return *agents_[id];
  }

  std::string Address(const std::string& id) {
    return "127.0.0.1:" + std::to_string(agents_[id]->peer_port());
  }

  // Starts n agents; every one after the first has the first as its seed.
  // `tweak` adjusts each agent's options before it starts.
  void StartFleet(int n,
                  const std::function<void(AgentOptions&)>& tweak = nullptr) {
    for (int i = 1; i <= n; ++i) {
      AgentOptions o = Options("n" + std::to_string(i));
      if (i > 1) o.seeds = {Address("n1")};
      if (tweak) tweak(o);
      StartAgent(std::move(o));
    }
  }

  // Whether every agent came to see `n` members alive (within WaitFor's
  // bound); a failure names the first agent that did not.
  ::testing::AssertionResult AllSeeAlive(size_t n) {
    for (auto& [id, a] : agents_) {
      Agent* agent = a.get();
      if (!WaitFor([&] { return Alive(*agent) == n; })) {
        return ::testing::AssertionFailure()
               << id << " sees " << Alive(*agent) << " alive, not " << n;
      }
    }
    return ::testing::AssertionSuccess();
  }

  static size_t Alive(Agent& a) {
    size_t n = 0;
    for (const auto& v : a.membership().Members()) {
      n += v.member.state == MemberState::kAlive;
    }
    return n;
  }

  static MemberState StateOf(Agent& a, const std::string& id) {
    for (const auto& v : a.membership().Members()) {
      if (v.member.node_id == id) return v.member.state;
    }
    return MemberState::kDead;
  }

  std::unique_ptr<pb::Local::Stub> Local(const std::string& id) {
    return pb::Local::NewStub(
        grpc::CreateChannel("unix:" + dir_ + "/" + id + ".sock",
                            grpc::InsecureChannelCredentials()));
  }

  std::string dir_;
  std::unique_ptr<Logger> log_;
  std::map<std::string, std::unique_ptr<Agent>> agents_;
  absl::Mutex mu_;
  std::map<std::string, int> etrn_runs_ ABSL_GUARDED_BY(mu_);
};

TEST_F(AgentTest, ThreeAgentsSeeEachOtherAlive) {
  StartFleet(3);
  for (auto& [id, a] : agents_) {
    Agent* agent = a.get();
    EXPECT_TRUE(WaitFor([&] { return Alive(*agent) == 3; })) << id;
  }
}

TEST_F(AgentTest, MembersOverTheLocalServiceWithModeAndLag) {
  StartFleet(2);
  struct stat st;
  ASSERT_EQ(::stat((dir_ + "/n1.sock").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  auto local = Local("n1");
  pb::MembersReply reply;
  ASSERT_TRUE(WaitFor([&] {
    grpc::ClientContext ctx;
    reply.Clear();
    if (!local->Members(&ctx, pb::MembersRequest(), &reply).ok()) return false;
    for (const auto& m : reply.members()) {
      if (m.member().node_id() == "n2" && m.gossip_lag_ms() >= 0 &&
          m.last_contact_unix_ms() > 0) {
        return true;
      }
    }
    return false;
  }));
  EXPECT_EQ(reply.node_id(), "n1");
  EXPECT_EQ(reply.members_size(), 2);
}

TEST_F(AgentTest, PolicyAddedOnOneIsListedOnTheOthers) {
  StartFleet(3);
  pb::PolicyAddRequest add;
  add.set_subject("192.0.2.7");
  add.set_action(pb::POLICY_ACTION_REJECT);
  add.set_reason("test block");
  add.set_ttl_seconds(600);
  pb::PolicyReply added;
  grpc::ClientContext ctx;
  ASSERT_TRUE(Local("n1")->PolicyAdd(&ctx, add, &added).ok());
  ASSERT_EQ(added.entries_size(), 1);
  for (const std::string id : {"n2", "n3"}) {
    auto local = Local(id);
    EXPECT_TRUE(WaitFor([&] {
      grpc::ClientContext c;
      pb::PolicyReply list;
      if (!local->PolicyList(&c, pb::PolicyListRequest(), &list).ok()) {
        return false;
      }
      return list.entries_size() == 1 &&
             list.entries(0).subject() == "192.0.2.7" &&
             list.entries(0).author_node() == "n1";
    })) << id;
  }
}

// 300 rate slots reported on n1 make deltas far over compress_from_bytes
// (gzip on the wire both ways); n2 ranks them fleet-wide (FleetRates,
// summed in place by TopRates) with n1's counts.
TEST_F(AgentTest, ManyRatesCrossCompressedAndRankOnAPeer) {
  StartFleet(3);
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  pb::ReportRatesRequest report;
  for (int i = 0; i < 300; ++i) {
    pb::RateSlot* s = report.add_slots();
    s->set_key("ip4:10.0." + std::to_string(i / 256) + "." +
               std::to_string(i % 256));
    s->set_slot_start(now - now % 450);
    s->set_messages(1 + static_cast<uint64_t>(i));
  }
  pb::ReportRatesReply reported;
  grpc::ClientContext ctx;
  ASSERT_TRUE(Local("n1")->ReportRates(&ctx, report, &reported).ok());
  auto local = Local("n2");
  pb::FleetRatesReply top;
  EXPECT_TRUE(WaitFor([&] {
    grpc::ClientContext c;
    pb::FleetRatesRequest req;
    req.set_limit(3);
    top.Clear();
    return local->FleetRates(&c, req, &top).ok() && top.rates_size() == 3 &&
           top.rates(2).total().messages() == 298;
  }));
  ASSERT_EQ(top.rates_size(), 3);
  EXPECT_EQ(top.rates(0).total().messages(), 300u);
  ASSERT_EQ(top.rates(0).per_node_size(), 1);
  EXPECT_EQ(top.rates(0).per_node(0).node_id(), "n1");
  // Those deltas went gzip'd (n1 answered Exchanges or pushed them, and
  // whoever got them first passed them on the same way) ...
  uint64_t gzipped = 0;
  for (auto& [id, a] : agents_) gzipped += a->Stats().deltas_gzipped;
  EXPECT_GT(gzipped, 0u);
  // ... and gzip pays: the delta of those 300 slots, as n1 serves it to a
  // node that has none, shrinks to well under half.
  DeltaBatch batch = agents_["n1"]->state().DeltaFor(pb::Digest(), 1 << 20);
  const std::string raw = batch.delta.SerializeAsString();
  ASSERT_GT(raw.size(), 512u);
  uLongf packed = compressBound(raw.size());
  std::string out(packed, '\0');
  ASSERT_EQ(compress2(reinterpret_cast<Bytef*>(out.data()), &packed,
                      reinterpret_cast<const Bytef*>(raw.data()), raw.size(),
                      Z_DEFAULT_COMPRESSION),
            Z_OK);
  std::printf("delta of 300 slots: %zu bytes raw, %lu gzip'd\n", raw.size(),
              static_cast<unsigned long>(packed));
  EXPECT_LT(packed, raw.size() / 2);
}

TEST_F(AgentTest, WatchPolicyStreamsTheSnapshotThenChanges) {
  StartFleet(2);
  ASSERT_TRUE(WaitFor([&] { return Alive(*agents_["n2"]) == 2; }));
  auto local = Local("n2");
  grpc::ClientContext wctx;
  auto reader = local->WatchPolicy(&wctx, pb::WatchPolicyRequest());
  pb::PolicyUpdate u;
  ASSERT_TRUE(reader->Read(&u));
  EXPECT_TRUE(u.snapshot());
  EXPECT_EQ(u.entries_size(), 0);

  pb::PolicyAddRequest add;
  add.set_subject("Example.COM");
  add.set_action(pb::POLICY_ACTION_DEFER);
  pb::PolicyReply added;
  grpc::ClientContext ctx;
  ASSERT_TRUE(Local("n1")->PolicyAdd(&ctx, add, &added).ok());
  // Bounded by the stream's deadline-free read: the change arrives by
  // gossip; cancel after a generous wait if it never does.
  std::atomic<bool> got{false};
  std::thread guard([&] {
    WaitFor([&] { return got.load(); }, 30000);
    wctx.TryCancel();
  });
  bool read = reader->Read(&u);
  got = true;
  guard.join();
  ASSERT_TRUE(read);
  EXPECT_FALSE(u.snapshot());
  ASSERT_EQ(u.entries_size(), 1);
  EXPECT_EQ(u.entries(0).subject(), "example.com");
  wctx.TryCancel();
  reader->Finish();
}

TEST_F(AgentTest, EtrnRunsOnceOnEveryNodeAndResultsReachTheOrigin) {
  StartFleet(3);
  ASSERT_TRUE(AllSeeAlive(3));
  auto local = Local("n2");
  pb::StartEtrnRequest start;
  start.set_domain("client.example");
  pb::StartEtrnReply started;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(local->StartEtrn(&ctx, start, &started).ok());
  }
  EXPECT_EQ(started.expected_nodes_size(), 3);
  pb::EtrnStatusRequest q;
  q.set_request_id(started.request().id());
  q.set_wait_ms(30000);
  pb::EtrnStatusReply status;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(local->EtrnStatus(&ctx, q, &status).ok());
  }
  EXPECT_EQ(status.pending_nodes_size(), 0);
  ASSERT_EQ(status.results_size(), 3);
  for (const auto& r : status.results()) {
    EXPECT_EQ(r.code(), 250);
    EXPECT_EQ(r.text(), "ETRN client.example started on " + r.node_id());
  }
  // Asking again (and more gossip rounds) runs nothing twice.
  q.set_wait_ms(300);
  grpc::ClientContext ctx;
  ASSERT_TRUE(local->EtrnStatus(&ctx, q, &status).ok());
  absl::MutexLock l(&mu_);
  EXPECT_EQ(etrn_runs_.size(), 3u);
  for (const auto& [k, n] : etrn_runs_) EXPECT_EQ(n, 1) << k;
}

// An idle fleet: probes carry the state hash and anti-entropy runs only
// as a safety net. Counted, not timed: over 60 gossip intervals a broken
// back-off runs about two exchanges per interval (fanout 2 here) and
// sends some 200 serialized bytes per interval; a hash that never matches
// starts an exchange at every probe (one per 5 intervals).
TEST_F(AgentTest, IdleGossipIsOneHashPerProbe) {
  StartFleet(3, [](AgentOptions& o) {
    o.gossip_interval_ms = 100;
    o.membership.probe_interval_ms = 500;
    o.membership.probe_timeout_ms = 250;
  });
  ASSERT_TRUE(AllSeeAlive(3));
  // Past the joins' news (2 s), into the back-off.
  Agent& n1 = *agents_["n1"];
  ASSERT_TRUE(WaitFor([&] { return n1.Stats().gossip_idle; }, 20000));
  const AgentStats before = n1.Stats();
  ASSERT_TRUE(WaitFor(
      [&] { return n1.Stats().gossip_ticks >= before.gossip_ticks + 60; },
      60000));
  const AgentStats after = n1.Stats();
  const double ticks =
      static_cast<double>(after.gossip_ticks - before.gossip_ticks);
  const uint64_t exchanges = after.exchanges - before.exchanges;
  const double sent_per_tick =
      static_cast<double>(after.bytes_sent - before.bytes_sent) / ticks;
  std::printf(
      "idle, 3 agents: %.0f intervals, %llu exchanges, %.1f serialized "
      "bytes sent per interval, %llu hash mismatches\n",
      ticks, static_cast<unsigned long long>(exchanges), sent_per_tick,
      static_cast<unsigned long long>(after.hash_mismatches -
                                      before.hash_mismatches));
  EXPECT_TRUE(after.gossip_idle);
  EXPECT_LE(static_cast<double>(exchanges), 2 + ticks / 20);
  EXPECT_LT(sent_per_tick, 60.0);
}

// While every node is idle, a change that is no news (a node status)
// still spreads: the probes' state hashes differ, and the prober
// exchanges with that peer without waiting for the 30 s idle round.
TEST_F(AgentTest, IdleFleetSpreadsAChangeThroughProbeHashes) {
  StartFleet(3, [](AgentOptions& o) {
    o.gossip_interval_ms = 100;
    o.gossip_idle_interval_ms = 600000;  // no idle round in this test
  });
  ASSERT_TRUE(AllSeeAlive(3));
  for (auto& [id, a] : agents_) {
    Agent* agent = a.get();
    ASSERT_TRUE(WaitFor([&] { return agent->Stats().gossip_idle; }, 20000))
        << id;
  }
  pb::NodeStatus status;
  status.set_hostname("n3.example");
  ASSERT_TRUE(agents_["n3"]->state().PublishNodeStatus(status).ok());
  for (const std::string id : {"n1", "n2"}) {
    Agent* agent = agents_[id].get();
    EXPECT_TRUE(WaitFor([&] {
      for (const pb::NodeStatus& st : agent->state().NodeStatuses()) {
        if (st.node_id() == "n3") return true;
      }
      return false;
    })) << id;
  }
}

TEST_F(AgentTest, GracefulStopIsSeenAsLeft) {
  StartFleet(3);
  Agent& n1 = *agents_["n1"];
  ASSERT_TRUE(WaitFor([&] { return Alive(n1) == 3; }));
  agents_["n3"]->Stop(/*graceful=*/true);
  EXPECT_TRUE(WaitFor([&] { return StateOf(n1, "n3") == MemberState::kLeft; }));
}

TEST_F(AgentTest, StoppedAgentIsSuspectedThenDead) {
  StartFleet(3);
  Agent& n1 = *agents_["n1"];
  ASSERT_TRUE(WaitFor([&] { return Alive(n1) == 3; }));
  agents_["n3"]->Stop(/*graceful=*/false);
  EXPECT_TRUE(WaitFor([&] { return StateOf(n1, "n3") == MemberState::kDead; }));
  auto log = fs::ReadFile(dir_ + "/maillog", 1 << 22);
  ASSERT_TRUE(log.ok());
  EXPECT_NE(log->find("member suspect: n3"), std::string::npos);
  EXPECT_NE(log->find("member dead: n3"), std::string::npos);
}

TEST_F(AgentTest, CallerWhoseCertificateNamesSomeoneElseIsRefused) {
  AgentOptions o = Options("n1");
  o.security.identity = [](const grpc::ServerContext&) {
    return absl::StatusOr<std::string>("mallory");
  };
  Agent& n1 = StartAgent(std::move(o));
  auto stub = pb::Peer::NewStub(
      grpc::CreateChannel(Address("n1"), grpc::InsecureChannelCredentials()));
  pb::PingRequest ping;
  ping.mutable_from()->set_node_id("n2");
  pb::PingReply pong;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Status s = stub->Ping(&ctx, ping, &pong);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(n1.Stats().peers_refused, 1u);
  auto log = fs::ReadFile(dir_ + "/maillog", 1 << 22);
  ASSERT_TRUE(log.ok());
  EXPECT_NE(log->find("peer refused: Ping from"), std::string::npos) << *log;
  EXPECT_NE(log->find("certificate names 'mallory'"), std::string::npos);
}

TEST_F(AgentTest, OversizedMessageIsRefusedByTheBound) {
  AgentOptions o = Options("n1");
  o.max_message_bytes = 64 * 1024;
  StartAgent(std::move(o));
  auto stub = pb::Peer::NewStub(
      grpc::CreateChannel(Address("n1"), grpc::InsecureChannelCredentials()));
  pb::PushRequest push;
  push.mutable_from()->set_node_id("n2");
  pb::RateSlot* slot = push.mutable_delta()->add_rates();
  slot->set_key(std::string(128 * 1024, 'k'));
  pb::PushReply reply;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  EXPECT_EQ(stub->Push(&ctx, push, &reply).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
}

}  // namespace
}  // namespace zm::cluster
