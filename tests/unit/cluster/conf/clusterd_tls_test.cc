// clusterd's peer security as OptionsFromConf builds it from cluster.conf:
// agents over real mutual-TLS gRPC on 127.0.0.1 with certificates made by
// the openssl command at test time. A caller whose certificate does not
// name the node it claims is refused; a renewed certificate is served
// without a restart; suspicion-min/-max reach the membership.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "cluster/agent/clusterd.h"
#include "cluster/conf/cluster_tls.h"
#include "node/common/log.h"
#include "tests/unit/testing/wait.h"
#include "zmnode/cluster/v1/peer.grpc.pb.h"

namespace zm::cluster {
namespace {

namespace pb = ::zmnode::cluster::v1;
using testutil::WaitFor;

void Sh(const std::string& cmd) {
  int rc = std::system((cmd + " >/dev/null 2>&1").c_str());
  ASSERT_EQ(rc, 0) << cmd;
}

class ClusterdTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/zm-clusterd-tls-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    Sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
       "-nodes -days 2 -subj /CN=fleet-ca -keyout " + P("ca-key.pem") +
       " -out " + P("ca-cert.pem"));
    log_ = std::make_unique<Logger>("clusterd", dir_ + "/maillog", false);
  }
  void TearDown() override {
    for (auto& [id, a] : agents_) a->Stop(false);
    agents_.clear();
    log_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::string P(const std::string& name) { return dir_ + "/" + name; }

  // A certificate `file` with CN `cn`, DNS SANs `cn` and `extra_dns`.
  void MakeCert(const std::string& file, const std::string& cn,
                const std::string& extra_dns = "") {
    std::string ext = P(file + ".ext");
    std::ofstream(ext) << "subjectAltName=DNS:" << cn
                       << (extra_dns.empty() ? "" : ",DNS:" + extra_dns)
                       << ",IP:127.0.0.1\n"
                       << "extendedKeyUsage=serverAuth,clientAuth\n";
    Sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
       "-subj /CN=" + cn + " -keyout " + P(file + "-key.pem") + " -out " +
       P(file + ".csr"));
    Sh("openssl x509 -req -days 2 -in " + P(file + ".csr") + " -CA " +
       P("ca-cert.pem") + " -CAkey " + P("ca-key.pem") +
       " -CAcreateserial -extfile " + ext + " -out " + P(file + "-cert.pem"));
  }

  ClusterConf Conf(const std::string& id, int port) {
    ClusterConf c;
    c.node_id = id;
    c.gossip_listen = {"127.0.0.1", static_cast<uint16_t>(port)};
    c.advertise = c.gossip_listen;
    c.tls_cert = P(id + "-cert.pem");
    c.tls_key = P(id + "-key.pem");
    c.tls_ca = P("ca-cert.pem");
    c.probe_interval_ms = 200;
    c.probe_timeout_ms = 100;
    c.gossip_interval_ms = 100;
    c.seed_refresh_ms = 500;
    c.local_socket = P(id + ".sock");
    return c;
  }

  Agent& Start(const ClusterConf& conf) {
    NodeDir node{dir_ + "/" + conf.node_id};
    std::filesystem::create_directories(node.db());
    auto o = OptionsFromConf(node, conf);
    EXPECT_TRUE(o.ok()) << o.status();
    auto a = Agent::Start(*std::move(o), *log_);
    EXPECT_TRUE(a.ok()) << a.status();
    agents_[conf.node_id] = *std::move(a);
    return *agents_[conf.node_id];
  }

  static MemberState StateOf(Agent& a, const std::string& id) {
    for (const auto& v : a.membership().Members()) {
      if (v.member.node_id == id) return v.member.state;
    }
    return MemberState::kDead;
  }

  // A Ping to `port` presenting the certificate `file`, claiming `claim`.
  grpc::Status PingAs(int port, const std::string& file,
                      const std::string& claim,
                      PeerIdentity* server_is = nullptr) {
    TlsFiles f{P(file + "-cert.pem"), P(file + "-key.pem"), P("ca-cert.pem")};
    auto creds = PeerChannelCredentials(f, ServerNameCheck::kFleetOnly);
    EXPECT_TRUE(creds.ok()) << creds.status();
    auto stub = pb::Peer::NewStub(grpc::CreateCustomChannel(
        "127.0.0.1:" + std::to_string(port), *creds,
        PeerChannelArguments("", 1 << 20)));
    pb::PingRequest ping;
    ping.mutable_from()->set_node_id(claim);
    ping.mutable_from()->set_generation(1);
    ping.mutable_from()->set_address("127.0.0.1:1");
    pb::PingReply pong;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    grpc::Status s = stub->Ping(&ctx, ping, &pong);
    if (server_is != nullptr && s.ok()) {
      auto id = VerifiedPeer(*ctx.auth_context());
      if (id.ok()) *server_is = *id;
    }
    return s;
  }

  std::string dir_;
  std::unique_ptr<Logger> log_;
  std::map<std::string, std::unique_ptr<Agent>> agents_;
};

TEST_F(ClusterdTlsTest, FleetOverMutualTlsRefusesAnImpostor) {
  MakeCert("n1", "n1");
  MakeCert("n2", "n2");
  MakeCert("n3", "n3");
  int p1 = testutil::FreeLoopbackPort(), p2 = testutil::FreeLoopbackPort();
  Agent& n1 = Start(Conf("n1", p1));
  ClusterConf c2 = Conf("n2", p2);
  c2.seeds = {{"127.0.0.1", static_cast<uint16_t>(p1)}};
  Agent& n2 = Start(c2);
  ASSERT_TRUE(WaitFor([&] {
    return StateOf(n1, "n2") == MemberState::kAlive &&
           StateOf(n2, "n1") == MemberState::kAlive;
  }));
  // n3's certificate is from the fleet CA but does not name n2.
  grpc::Status s = PingAs(p1, "n3", "n2");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED)
      << s.error_message();
  EXPECT_GE(n1.Stats().peers_refused, 1u);
  // The same certificate claiming its own name is served.
  s = PingAs(p1, "n3", "n3");
  EXPECT_TRUE(s.ok()) << s.error_message();
  // A node named by a DNS SAN rather than the CN is who it claims to be.
  MakeCert("alias", "n4-host", "n4");
  s = PingAs(p1, "alias", "n4");
  EXPECT_TRUE(s.ok()) << s.error_message();
}

TEST_F(ClusterdTlsTest, RenewedCertificateIsServedWithoutRestart) {
  MakeCert("n1", "n1");
  MakeCert("n1new", "n1", "renewed.n1");
  MakeCert("n3", "n3");
  int p1 = testutil::FreeLoopbackPort();
  Start(Conf("n1", p1));
  PeerIdentity id;
  ASSERT_TRUE(PingAs(p1, "n3", "n3", &id).ok());
  EXPECT_FALSE(id.Names("renewed.n1"));
  // Key first, then certificate, each by rename (cluster_tls.h).
  std::filesystem::rename(P("n1new-key.pem"), P("n1-key.pem"));
  std::filesystem::rename(P("n1new-cert.pem"), P("n1-cert.pem"));
  EXPECT_TRUE(WaitFor([&] {
    PeerIdentity now;
    return PingAs(p1, "n3", "n3", &now).ok() && now.Names("renewed.n1");
  }));
}

TEST(ClusterdOptionsTest, SuspicionSettingsReachTheMembership) {
  ClusterConf c;
  c.node_id = "n1";
  c.suspicion_min_ms = 1500;
  c.suspicion_max_ms = 9000;
  auto o = OptionsFromConf(NodeDir{"/nonexistent"}, c);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->membership.suspicion_min_ms, 1500);
  EXPECT_EQ(o->membership.suspicion_max_ms, 9000);
}

TEST(ClusterdOptionsTest, FullSyncIntervalReachesTheMembership) {
  ClusterConf c;
  c.node_id = "n1";
  auto o = OptionsFromConf(NodeDir{"/nonexistent"}, c);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->membership.full_sync_interval_ms, 30000);
  c.full_sync_interval_ms = 0;
  o = OptionsFromConf(NodeDir{"/nonexistent"}, c);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->membership.full_sync_interval_ms, 0);
}

}  // namespace
}  // namespace zm::cluster
