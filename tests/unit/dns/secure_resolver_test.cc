// zm::dns::SecureResolver configuration: the names RFC 6761 reserves
// (.test) stay blocked by libunbound unless resolver.conf unblocks them
// (`dnssec-unblock-zone`), which only test setups do.
#include "node/dns/secure_resolver.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "node/common/strings.h"
#include "tests/unit/dns/dnsmasq.h"

namespace zm::dns {
namespace {

class SecureResolverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(dns_.Start()) << dns_.error();
    dir_ = std::filesystem::temp_directory_path() /
           ("zm-secure-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    // A trust anchor for a zone nothing here is under: the answers below
    // are insecure, not bogus.
    anchor_ = (dir_ / "anchor.ds").string();
    std::ofstream(anchor_)
        << "anchor.invalid. IN DS 12345 13 2 "
           "0000000000000000000000000000000000000000000000000000000000000000"
           "\n";
    options_.dnssec_servers = {dns_.server()};
    options_.trust_anchors = {anchor_};
    options_.timeout_ms = 1000;
    options_.attempts = 1;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  testutil::Dnsmasq dns_{{"host-record=mx.example.test,192.0.2.7"}};
  std::filesystem::path dir_;
  std::string anchor_;
  ResolverOptions options_;
};

TEST_F(SecureResolverTest, TestZoneIsBlockedByDefault) {
  auto r = SecureResolver::Create(options_);
  ASSERT_TRUE(r.ok()) << r.status();
  auto a = (*r)->Lookup("mx.example.test", kRrA);
  ASSERT_TRUE(a.ok()) << a.status();
  // libunbound's own answer, the server never asked.
  EXPECT_TRUE(a->nxdomain);
  EXPECT_TRUE(a->empty());
}

TEST_F(SecureResolverTest, UnblockedZoneGoesToTheServer) {
  options_.dnssec_unblock_zones = {"test"};
  auto r = SecureResolver::Create(options_);
  ASSERT_TRUE(r.ok()) << r.status();
  auto a = (*r)->Lookup("mx.example.test", kRrA);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_FALSE(a->nxdomain);
  EXPECT_FALSE(a->secure);
  EXPECT_FALSE(a->bogus) << a->why_bogus;
  EXPECT_EQ(a->addresses, std::vector<std::string>{"192.0.2.7"});
}

TEST(SecureResolverConf, UnblockZoneIsReadFromResolverConf) {
  NodeDir node;
  node.home = (std::filesystem::temp_directory_path() /
               ("zm-secure-conf-" + std::to_string(::getpid())))
                  .string();
  std::filesystem::create_directories(node.etc());
  std::ofstream(node.etc_file("resolver.conf"))
      << "dnssec-trust-anchor ta.ds\ndnssec-unblock-zone Test.\n";
  auto o = OptionsForNode(node);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->dnssec_unblock_zones, std::vector<std::string>{"test"});
  std::ofstream(node.etc_file("resolver.conf")) << "dnssec-unblock-zone\n";
  o = OptionsForNode(node);
  ASSERT_FALSE(o.ok());
  EXPECT_NE(Message(o.status()).find("resolver.conf:1:"), std::string::npos)
      << o.status();
  std::filesystem::remove_all(node.home);
}

}  // namespace
}  // namespace zm::dns
