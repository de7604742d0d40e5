// zm::dns::Resolver against a real dnsmasq: every record type, null MX,
// NXDOMAIN/NODATA/temporary failure, the cache, and resolver.conf.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "node/common/strings.h"
#include "node/dns/resolver.h"
#include "tests/unit/dns/dnsmasq.h"

namespace zm::dns {
namespace {

std::vector<std::string> Records() {
  return {
      "mx-host=example.test,mx2.example.test,20",
      "mx-host=example.test,mx1.example.test,10",
      "mx-host=example.test,mx1b.example.test,10",
      "host-record=mx1.example.test,192.0.2.1,2001:db8::1",
      "host-record=aonly.test,192.0.2.5",
      "dns-rr=nullmx.test,15,000000",
      "txt-record=example.test,\"v=spf1 -all\"",
      "srv-host=_submission._tcp.example.test,mx1.example.test,587,5,7",
      "ptr-record=1.2.0.192.in-addr.arpa,mx1.example.test",
  };
}

class ResolverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(dns_.Start()) << dns_.error();
    ResolverOptions o;
    o.servers = {dns_.server()};
    o.timeout_ms = 500;
    o.attempts = 1;
    auto r = Resolver::Create(o);
    ASSERT_TRUE(r.ok()) << r.status();
    r_ = std::move(*r);
  }
  testutil::Dnsmasq dns_{Records()};
  std::unique_ptr<Resolver> r_;
};

TEST_F(ResolverTest, MxSortedByPreference) {
  auto mx = r_->LookupMx("Example.TEST.");
  ASSERT_TRUE(mx.ok()) << mx.status();
  ASSERT_EQ(mx->size(), 3u);
  EXPECT_EQ((*mx)[0].preference, 10);
  EXPECT_EQ((*mx)[1].preference, 10);
  EXPECT_EQ((*mx)[2].preference, 20);
  EXPECT_EQ((*mx)[2].host, "mx2.example.test");
}

TEST_F(ResolverTest, NullMxIsOneEmptyHost) {
  auto mx = r_->LookupMx("nullmx.test");
  ASSERT_TRUE(mx.ok()) << mx.status();
  ASSERT_EQ(mx->size(), 1u);
  EXPECT_EQ((*mx)[0].preference, 0);
  EXPECT_EQ((*mx)[0].host, "");
}

TEST_F(ResolverTest, NoDataIsEmptyAndNxdomainIsNotFound) {
  auto mx = r_->LookupMx("aonly.test");
  ASSERT_TRUE(mx.ok()) << mx.status();
  EXPECT_TRUE(mx->empty());
  auto nx = r_->LookupMx("nosuch.test");
  EXPECT_TRUE(absl::IsNotFound(nx.status())) << nx.status();
  auto nxa = r_->LookupA("nosuch.test");
  EXPECT_TRUE(absl::IsNotFound(nxa.status())) << nxa.status();
}

TEST_F(ResolverTest, ServerFailureIsUnavailable) {
  auto mx = r_->LookupMx("x.fail.test");
  EXPECT_TRUE(absl::IsUnavailable(mx.status())) << mx.status();
}

TEST_F(ResolverTest, AddressesTxtSrvPtr) {
  auto a = r_->LookupA("mx1.example.test");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(*a, std::vector<std::string>{"192.0.2.1"});
  auto aaaa = r_->LookupAaaa("mx1.example.test");
  ASSERT_TRUE(aaaa.ok()) << aaaa.status();
  EXPECT_EQ(*aaaa, std::vector<std::string>{"2001:db8::1"});
  auto txt = r_->LookupTxt("example.test");
  ASSERT_TRUE(txt.ok()) << txt.status();
  EXPECT_EQ(*txt, std::vector<std::string>{"v=spf1 -all"});
  auto srv = r_->LookupSrv("_submission._tcp.example.test");
  ASSERT_TRUE(srv.ok()) << srv.status();
  ASSERT_EQ(srv->size(), 1u);
  EXPECT_EQ((*srv)[0].port, 587);
  EXPECT_EQ((*srv)[0].priority, 5);
  EXPECT_EQ((*srv)[0].weight, 7);
  EXPECT_EQ((*srv)[0].target, "mx1.example.test");
  auto ptr = r_->LookupPtr("192.0.2.1");
  ASSERT_TRUE(ptr.ok()) << ptr.status();
  EXPECT_EQ(*ptr, std::vector<std::string>{"mx1.example.test"});
}

TEST_F(ResolverTest, MalformedNamesAreInvalidArgument) {
  EXPECT_TRUE(absl::IsInvalidArgument(r_->LookupMx("").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(r_->LookupMx("a..b").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(r_->LookupMx("a b.test").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(r_->LookupPtr("not-an-ip").status()));
}

TEST_F(ResolverTest, CachedAnswersOutliveTheServerWithinTheirTtl) {
  ASSERT_TRUE(r_->LookupMx("example.test").ok());
  ASSERT_TRUE(r_->LookupA("mx1.example.test").ok());
  dns_.Stop();
  auto mx = r_->LookupMx("example.test");
  ASSERT_TRUE(mx.ok()) << mx.status();
  EXPECT_EQ(mx->size(), 3u);
  EXPECT_TRUE(r_->LookupA("mx1.example.test").ok());
  // Not asked before: no server now, a temporary failure.
  EXPECT_TRUE(absl::IsUnavailable(r_->LookupA("aonly.test").status()));
}

TEST(ResolverTtl, ZeroTtlIsNotCached) {
  testutil::Dnsmasq dns(Records(), /*ttl=*/0);
  ASSERT_TRUE(dns.Start()) << dns.error();
  ResolverOptions o;
  o.servers = {dns.server()};
  o.timeout_ms = 300;
  o.attempts = 1;
  auto r = Resolver::Create(o);
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE((*r)->LookupA("mx1.example.test").ok());
  dns.Stop();
  EXPECT_TRUE(absl::IsUnavailable((*r)->LookupA("mx1.example.test").status()));
}

TEST(ResolverThreads, ManyThreadsShareOneResolver) {
  testutil::Dnsmasq dns(Records());
  ASSERT_TRUE(dns.Start()) << dns.error();
  ResolverOptions o;
  o.servers = {dns.server()};
  o.cache_entries = 0;
  auto r = Resolver::Create(o);
  ASSERT_TRUE(r.ok());
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        auto mx = (*r)->LookupMx("example.test");
        if (mx.ok() && mx->size() == 3) ++good;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(good.load(), 80);
}

class ResolverConfTest : public ::testing::Test {
 protected:
  void SetUp() override {
    node_.home = ::testing::TempDir() + "/resolvconf-" +
                 std::to_string(::getpid()) + "-" +
                 ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::create_directories(node_.etc());
  }
  void Write(const std::string& text) {
    std::ofstream(node_.etc_file("resolver.conf")) << text;
  }
  NodeDir node_;
};

TEST_F(ResolverConfTest, AbsentFileGivesDefaults) {
  auto o = OptionsForNode(node_);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_TRUE(o->servers.empty());
  EXPECT_EQ(o->timeout_ms, 5000);
}

TEST_F(ResolverConfTest, ReadsServersTimeoutAttempts) {
  Write("# test\nnameserver 127.0.0.1:5353\nnameserver [::1]:53\n"
        "nameserver 192.0.2.1\ntimeout 700\nattempts 3\ncache 0\n");
  auto o = OptionsForNode(node_);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->servers, (std::vector<std::string>{"127.0.0.1:5353", "[::1]:53",
                                                  "192.0.2.1"}));
  EXPECT_EQ(o->timeout_ms, 700);
  EXPECT_EQ(o->attempts, 3);
  EXPECT_EQ(o->cache_entries, 0u);
}

TEST_F(ResolverConfTest, ErrorsNameFileAndLine) {
  Write("nameserver 127.0.0.1\nnameserver bogus\n");
  auto o = OptionsForNode(node_);
  ASSERT_FALSE(o.ok());
  EXPECT_NE(Message(o.status()).find("resolver.conf:2:"), std::string::npos)
      << o.status();
  Write("timeout x\n");
  EXPECT_FALSE(OptionsForNode(node_).ok());
  Write("colour blue\n");
  EXPECT_FALSE(OptionsForNode(node_).ok());
}

TEST_F(ResolverConfTest, NodeConfigReachesDnsmasq) {
  testutil::Dnsmasq dns(Records());
  ASSERT_TRUE(dns.Start()) << dns.error();
  Write("nameserver " + dns.server() + "\ntimeout 500\nattempts 1\n");
  auto o = OptionsForNode(node_);
  ASSERT_TRUE(o.ok()) << o.status();
  auto r = Resolver::Create(*o);
  ASSERT_TRUE(r.ok()) << r.status();
  auto mx = (*r)->LookupMx("example.test");
  ASSERT_TRUE(mx.ok()) << mx.status();
  EXPECT_EQ(mx->size(), 3u);
}

}  // namespace
}  // namespace zm::dns
