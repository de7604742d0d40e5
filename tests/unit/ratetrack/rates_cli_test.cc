// `zmailer rates` reads the state while another process holds the
// rate-tracker's database open for writing (as the smtpserver does).
#include <gtest/gtest.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <ctime>
#include <filesystem>
#include <fstream>

#include "node/ratetrack/rate_tracker.h"
#include "nlohmann/json.hpp"

namespace zm::ratetrack {
namespace {

struct Output {
  int status = -1;
  std::string out;
};

Output Zmailer(const std::string& args) {
  Output r;
  std::string cmd = std::string(ZM_ZMAILER_BIN) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0 && r.out.size() < (1 << 20)) {
    r.out.append(buf, n);
  }
  int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

class RatesCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/zm-rates-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    node_.home = tmpl;
    std::filesystem::create_directories(node_.etc());
  }
  void TearDown() override { std::filesystem::remove_all(node_.home); }
  NodeDir node_;
};

TEST_F(RatesCliTest, ListsWhatTheWriterFlushed) {
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  auto rt = RateTracker::Open(node_, "mx1", RateWindow{});
  ASSERT_TRUE(rt.ok()) << rt.status();
  (*rt)->Add(*KeyForIp("192.0.2.7"), Counts{.messages = 5, .recipients = 9},
             now);
  (*rt)->Add(*KeyForIp("2001:db8::1"), Counts{.messages = 2, .recipients = 20},
             now);
  (*rt)->Add(KeyForUser("Alice"), Counts{.auth_failures = 3}, now);
  (*rt)->MergePeer({SlotCount{*KeyForIp("192.0.2.7"), "mx2", now,
                              {.messages = 1}}});
  ASSERT_TRUE((*rt)->Flush().ok());

  Output r = Zmailer("-C " + node_.home + " rates --json");
  ASSERT_EQ(r.status, 0) << r.out;
  nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  ASSERT_EQ(j["sources"].size(), 2u) << r.out;  // alice sent no messages
  EXPECT_EQ(j["sources"][0]["key"], "ip4:192.0.2.7");
  EXPECT_EQ(j["sources"][0]["messages"], 6);
  EXPECT_EQ(j["sources"][0]["nodes"]["mx1"]["messages"], 5);
  EXPECT_EQ(j["sources"][0]["nodes"]["mx2"]["messages"], 1);
  EXPECT_EQ(j["sources"][1]["key"], "ip6:2001:db8::/64");

  r = Zmailer("-C " + node_.home + " rates --json --by recipients -n 1");
  ASSERT_EQ(r.status, 0) << r.out;
  j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_EQ(j["sources"].size(), 1u) << r.out;
  EXPECT_EQ(j["sources"][0]["key"], "ip6:2001:db8::/64");

  r = Zmailer("-C " + node_.home + " rates --json --by auth_failures");
  j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_EQ(j["sources"].size(), 1u) << r.out;
  EXPECT_EQ(j["sources"][0]["key"], "user:alice");

  r = Zmailer("-C " + node_.home + " rates alice");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("user:alice"), std::string::npos) << r.out;

  r = Zmailer("-C " + node_.home + " rates");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(r.out.rfind("SOURCE", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("mx1=5,mx2=1"), std::string::npos) << r.out;
}

TEST_F(RatesCliTest, Misuse) {
  EXPECT_EQ(Zmailer("-C " + node_.home + " rates --by nothing").status, 64);
  EXPECT_EQ(Zmailer("-C " + node_.home + "/none rates").status, 78);
  std::ofstream(node_.etc_file("smtpserver.conf")) << "PARAM nonsense 1\n";
  Output r = Zmailer("-C " + node_.home + " rates");
  EXPECT_EQ(r.status, 78) << r.out;
  EXPECT_NE(r.out.find("smtpserver.conf:1"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace zm::ratetrack
