#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "node/config/cluster_conf.h"
#include "node/config/config_file.h"
#include "node/config/mail_conf.h"

namespace zm::config {
namespace {

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/zm-config-XXXXXX";
    node_.home = ::mkdtemp(tmpl);
    std::filesystem::create_directories(node_.etc());
  }
  void TearDown() override { std::filesystem::remove_all(node_.home); }
  std::string Write(const std::string& name, const std::string& text) {
    std::string path = node_.etc_file(name);
    std::ofstream(path) << text;
    return path;
  }
  NodeDir node_;
};

TEST_F(ConfigTest, MailConfReadsIdentity) {
  Write("mail.conf",
        "# identity\nhostname=mx1.example.net\nmydomain=\"example.net\"\n");
  auto mc = LoadMailConf(node_);
  ASSERT_TRUE(mc.ok()) << mc.status();
  EXPECT_EQ(mc->hostname, "mx1.example.net");
  EXPECT_EQ(mc->mydomain, "example.net");
  EXPECT_EQ(mc->orgdomain, "example.net");
}

TEST_F(ConfigTest, MailConfNamesFileAndLine) {
  std::string path = Write("mail.conf", "hostname=a.example\n\nbogus=1\n");
  auto mc = LoadMailConf(node_);
  ASSERT_FALSE(mc.ok());
  EXPECT_EQ(std::string(mc.status().message()),
            path + ":3: unknown name 'bogus'");
}

TEST_F(ConfigTest, NodeIdFromClusterConf) {
  // The other keys belong to zm::cluster::LoadClusterConf; only node-id
  // is read here.
  Write("cluster.conf",
        "node-id mx1\ngossip-listen 127.0.0.1:7400\nseed a:1\n");
  auto id = LoadNodeId(node_);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, "mx1");
  auto tag = LoadNodeTag(node_);
  ASSERT_TRUE(tag.ok());
  EXPECT_EQ(*tag, "mx1");
}

TEST_F(ConfigTest, NodeIdNamesFileAndLine) {
  std::string path = Write("cluster.conf", "# fleet\n\nnode-id a b\n");
  auto id = LoadNodeId(node_);
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(std::string(id.status().message()),
            path + ":3: node-id takes one value");
  std::filesystem::remove(path);
  EXPECT_EQ(LoadNodeId(node_).status().code(), absl::StatusCode::kNotFound);
}

TEST(Durations, ZmailerStyle) {
  EXPECT_EQ(*ParseDurationMs("1m"), 60000);
  EXPECT_EQ(*ParseDurationMs("3d"), 3 * 86400000LL);
  EXPECT_EQ(*ParseDurationMs("1d2h"), 86400000LL + 7200000LL);
  EXPECT_EQ(*ParseDurationMs("15"), 15000);
  EXPECT_EQ(*ParseDurationMs("250ms"), 250);
  EXPECT_FALSE(ParseDurationMs("").ok());
  EXPECT_FALSE(ParseDurationMs("m").ok());
  EXPECT_FALSE(ParseDurationMs("5x").ok());
  // Longer than a year is refused, never wrapped (found by fuzz_scheduler_conf).
  EXPECT_EQ(*ParseDurationMs("366d"), 366 * 86400000LL);
  EXPECT_FALSE(ParseDurationMs("367d").ok());
  EXPECT_FALSE(ParseDurationMs("5644511759213021653").ok());
  EXPECT_FALSE(ParseDurationMs("300d300d").ok());
}

TEST(StripComment, KeepsHashInQuotes) {
  EXPECT_EQ(StripComment("command=\"sm #x\" # note"), "command=\"sm #x\"");
  EXPECT_EQ(StripComment("a b   "), "a b");
}

TEST_F(ConfigTest, ExpandsNodeVariables) {
  auto v = ExpandVariables("${POSTOFFICE}/x $LOGDIR", node_);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, node_.spool() + "/x " + node_.log());
  EXPECT_FALSE(ExpandVariables("$NO_SUCH_VAR_ZM", node_).ok());
}

}  // namespace
}  // namespace zm::config
