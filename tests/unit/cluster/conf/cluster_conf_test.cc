// cluster.conf: every key, the defaults, and every error with file:line.
#include "cluster/conf/cluster_conf.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace zm::cluster {
namespace {

class ClusterConfTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/zm-cluster-conf-XXXXXX";
    node_.home = ::mkdtemp(tmpl);
    std::filesystem::create_directories(node_.etc() + "/tls");
    for (const char* f : {"cert.pem", "key.pem", "ca.pem"}) {
      std::ofstream(node_.etc() + "/tls/" + f) << "x\n";
    }
  }
  void TearDown() override { std::filesystem::remove_all(node_.home); }

  absl::StatusOr<ClusterConf> Parse(const std::string& text) {
    return ParseClusterConf(text, "cluster.conf", node_);
  }
  // The error message of a text that must not parse.
  std::string ErrorOf(const std::string& text) {
    auto c = Parse(text);
    if (c.ok()) return "(parsed)";
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(c.status().message());
  }

  // A minimal file of a fleet member; tests append to it.
  static constexpr const char* kFleet =
      "node-id mx1\n"
      "gossip-listen 127.0.0.1:7400\n"
      "tls-cert tls/cert.pem\n"
      "tls-key $MAILVAR/tls/key.pem\n"
      "tls-ca tls/ca.pem\n";

  NodeDir node_;
};

TEST_F(ClusterConfTest, NodeIdAloneIsNotAFleet) {
  auto c = Parse("# a single node\nnode-id mx1\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->node_id, "mx1");
  EXPECT_FALSE(c->Enabled());
  EXPECT_EQ(c->local_socket, node_.run() + "/cluster.sock");
  auto empty = Parse("");
  ASSERT_TRUE(empty.ok());
  EXPECT_FALSE(empty->Enabled());
}

TEST_F(ClusterConfTest, DefaultsOfAFleetMember) {
  auto c = Parse(kFleet);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->Enabled());
  EXPECT_EQ(c->gossip_listen, (HostPort{"127.0.0.1", 7400}));
  EXPECT_EQ(c->advertise, c->gossip_listen);
  EXPECT_EQ(c->tls_cert, node_.etc() + "/tls/cert.pem");
  EXPECT_EQ(c->tls_key, node_.etc() + "/tls/key.pem");
  EXPECT_EQ(c->tls_ca, node_.etc() + "/tls/ca.pem");
  EXPECT_EQ(c->gossip_interval_ms, 200);
  EXPECT_EQ(c->fanout, 3);
  EXPECT_EQ(c->probe_interval_ms, 1000);
  EXPECT_EQ(c->probe_timeout_ms, 500);
  EXPECT_EQ(c->indirect_probes, 3);
  EXPECT_EQ(c->suspicion_min_ms, 2000);
  EXPECT_EQ(c->suspicion_max_ms, 6000);
  EXPECT_EQ(c->full_sync_interval_ms, 30000);
  EXPECT_EQ(c->seed_refresh_ms, 30000);
  EXPECT_EQ(c->max_message_bytes, 4 << 20);
  EXPECT_EQ(c->policy_tombstone_horizon_ms, 24LL * 3600 * 1000);
  EXPECT_FALSE(c->rate_slots.has_value());
  EXPECT_FALSE(c->rate_slot_seconds.has_value());
  EXPECT_TRUE(c->seeds.empty());
}

TEST_F(ClusterConfTest, EveryKey) {
  auto c = Parse(std::string(kFleet) +
                 "advertise [2001:db8::1]:7401   # what peers dial\n"
                 "seed 10.0.0.2:7400 peer3.example:7400\n"
                 "seed [::1]:7402\n"
                 "seed-dns zmnode-peers.mail.svc.cluster.local.\n"
                 "seed-srv _gossip._tcp.zmnode.example\n"
                 "seed-refresh 45\n"
                 "gossip-interval 250\n"
                 "fanout 4\n"
                 "probe-interval 2s\n"
                 "probe-timeout 800ms\n"
                 "indirect-probes 5\n"
                 "suspicion-min 1500\n"
                 "suspicion-max 1m\n"
                 "full-sync-interval 45\n"
                 "max-message-bytes 512k\n"
                 "local-socket /tmp/x.sock\n"
                 "rate-slots 12\n"
                 "rate-slot-seconds 300\n"
                 "policy-tombstone-horizon 2d\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->advertise, (HostPort{"2001:db8::1", 7401}));
  EXPECT_EQ(c->advertise.ToString(), "[2001:db8::1]:7401");
  ASSERT_EQ(c->seeds.size(), 3u);
  EXPECT_EQ(c->seeds[0].ToString(), "10.0.0.2:7400");
  EXPECT_EQ(c->seeds[1], (HostPort{"peer3.example", 7400}));
  EXPECT_EQ(c->seeds[2], (HostPort{"::1", 7402}));
  EXPECT_EQ(c->seed_dns, "zmnode-peers.mail.svc.cluster.local");
  EXPECT_EQ(c->seed_srv, "_gossip._tcp.zmnode.example");
  EXPECT_EQ(c->seed_refresh_ms, 45000);  // plain seed-refresh: seconds
  EXPECT_EQ(c->gossip_interval_ms, 250);  // plain gossip-interval: ms
  EXPECT_EQ(c->fanout, 4);
  EXPECT_EQ(c->probe_interval_ms, 2000);
  EXPECT_EQ(c->probe_timeout_ms, 800);
  EXPECT_EQ(c->indirect_probes, 5);
  EXPECT_EQ(c->suspicion_min_ms, 1500);
  EXPECT_EQ(c->suspicion_max_ms, 60000);
  EXPECT_EQ(c->full_sync_interval_ms, 45000);
  EXPECT_EQ(c->max_message_bytes, 512 * 1024);
  EXPECT_EQ(c->local_socket, "/tmp/x.sock");
  EXPECT_EQ(c->rate_slots, 12);
  EXPECT_EQ(c->rate_slot_seconds, 300);
  EXPECT_EQ(c->policy_tombstone_horizon_ms, 2LL * 86400 * 1000);
}

TEST_F(ClusterConfTest, CrlfAndComments) {
  auto c = Parse("node-id mx1\r\n# gossip-listen 1.2.3.4:5\r\n\r\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->Enabled());
}

TEST_F(ClusterConfTest, HostPorts) {
  EXPECT_TRUE(ParseHostPort("a.example:1").ok());
  EXPECT_TRUE(ParseHostPort("[::]:65535").ok());
  EXPECT_TRUE((HostPort{"0.0.0.0", 1}).IsWildcard());
  EXPECT_TRUE((HostPort{"::", 1}).IsWildcard());
  EXPECT_FALSE((HostPort{"::1", 1}).IsWildcard());
  for (const char* bad : {"a.example", "a.example:0", "a.example:65536",
                          ":7400", "::1:7400", "[::1]7400", "[nope]:1",
                          "1.2.3.400:1", "bad_host:1", "a:port"}) {
    EXPECT_FALSE(ParseHostPort(bad).ok()) << bad;
  }
}

struct BadCase {
  std::string text;
  std::string error;  // after "cluster.conf:"
};

TEST_F(ClusterConfTest, EveryErrorNamesFileAndLine) {
  const std::string f = kFleet;  // 5 lines
  const BadCase cases[] = {
      {"node-id mx1\nbogus 1\n", "2: unknown key 'bogus'"},
      {"node-id\n", "1: node-id needs a value"},
      {"node-id a b\n", "1: node-id takes one value"},
      {"node-id mx_1\n",
       "1: node-id 'mx_1' must be a DNS name (letters, digits, '-', '.'): "
       "it names the node's certificate"},
      {"node-id a\nnode-id b\n", "2: node-id is already set on line 1"},
      {"gossip-listen 127.0.0.1\n",
       "1: gossip-listen: '127.0.0.1' is not host:port"},
      {f + "advertise 10.0.0.1:0\n",
       "6: advertise: '0' is not a port (1-65535)"},
      {f + "seed 10.0.0.2:7400 nope\n", "6: seed: 'nope' is not host:port"},
      {f + "seed-dns bad_name.example\n",
       "6: seed-dns: 'bad_name.example' is not a DNS name"},
      {f + "seed-srv -x.example\n", "6: seed-srv: '-x.example' is not a DNS name"},
      {f + "seed-refresh 0\n", "6: seed-refresh needs a positive duration, not '0'"},
      {f + "gossip-interval 3parsecs\n",
       "6: gossip-interval needs a positive duration, not '3parsecs'"},
      {f + "fanout 0\n", "6: fanout needs a number from 1 to 64, not '0'"},
      {f + "fanout x\n", "6: fanout needs a number from 1 to 64, not 'x'"},
      {f + "probe-interval -1\n",
       "6: probe-interval needs a positive duration, not '-1'"},
      {f + "probe-timeout 1s 2s\n", "6: probe-timeout takes one value"},
      {f + "indirect-probes 17\n",
       "6: indirect-probes needs a number from 1 to 16, not '17'"},
      {f + "full-sync-interval 500ms\n",
       "6: full-sync-interval needs a duration of at least 1s or off, "
       "not '500ms'"},
      {f + "full-sync-interval soon\n",
       "6: full-sync-interval needs a duration of at least 1s or off, "
       "not 'soon'"},
      {f + "full-sync-interval 30s 1m\n",
       "6: full-sync-interval takes one value"},
      {f + "suspicion-min 0\n",
       "6: suspicion-min needs a positive duration, not '0'"},
      {f + "suspicion-max 1hour\n", "6: suspicion-max needs a positive duration, not '1hour'"},
      {f + "max-message-bytes 100\n",
       "6: max-message-bytes needs a size of at least 4096 (k, M, G suffixes), "
       "not '100'"},
      {f + "local-socket $NO_SUCH_VARIABLE_HERE/s\n",
       "6: local-socket: unknown variable '$NO_SUCH_VARIABLE_HERE'"},
      {f + "local-socket /" + std::string(120, 'a') + "\n",
       "6: local-socket path is longer than 107 bytes: /" +
           std::string(120, 'a')},
      {f + "rate-slots 1001\n",
       "6: rate-slots needs a number from 1 to 1000, not '1001'"},
      {f + "rate-slot-seconds 0\n",
       "6: rate-slot-seconds needs a number from 1 to 86400, not '0'"},
      {f + "policy-tombstone-horizon never\n",
       "6: policy-tombstone-horizon needs a positive duration, not 'never'"},
      {"node-id mx1\nseed 10.0.0.2:7400\n", "2: seed needs gossip-listen"},
      {"advertise 10.0.0.1:7400\n", "1: advertise needs gossip-listen"},
      {"node-id mx1\nseed-dns peers.example\n", "2: seed-dns needs gossip-listen"},
      {"gossip-listen 127.0.0.1:7400\n", "1: gossip-listen needs node-id"},
      {"node-id mx1\ngossip-listen 0.0.0.0:7400\n",
       "2: gossip-listen is a wildcard address: set advertise to the address "
       "peers dial"},
      {f + "advertise [::]:7400\n",
       "6: advertise must be an address peers can dial"},
      {f + "probe-timeout 1s\n",
       "6: probe-timeout (1000ms) must be shorter than probe-interval "
       "(1000ms)"},
      {f + "suspicion-min 7s\n",
       "6: suspicion-min (7000ms) is above suspicion-max (6000ms)"},
      {"node-id mx1\ngossip-listen 127.0.0.1:7400\ntls-cert tls/cert.pem\n"
       "tls-ca tls/ca.pem\n",
       "2: gossip-listen needs tls-key (peers only talk mutual TLS)"},
      {"node-id mx1\ngossip-listen 127.0.0.1:7400\ntls-cert tls/cert.pem\n"
       "tls-key tls/key.pem\ntls-ca tls/missing.pem\n",
       "5: tls-ca: cannot read " + node_.etc() +
           "/tls/missing.pem: No such file or directory"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(ErrorOf(c.text), "cluster.conf:" + c.error) << c.text;
  }
}

TEST_F(ClusterConfTest, LoadNamesTheFile) {
  auto missing = LoadClusterConf(node_);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  std::string path = node_.etc_file("cluster.conf");
  std::ofstream(path) << "node-id mx1\nfanout 2\n";
  auto c = LoadClusterConf(node_);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->fanout, 2);
  std::ofstream(path) << "node-id mx1\nfanout two\n";
  c = LoadClusterConf(node_);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(std::string(c.status().message()),
            path + ":2: fanout needs a number from 1 to 64, not 'two'");
}

}  // namespace
}  // namespace zm::cluster
