// MakeContentFilter against small filter scripts written by the test.
#include "node/smtpserver/smtpserver_filter.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "node/common/fs.h"

namespace zm::smtpserver {
namespace {

using Outcome = FilterResult::Outcome;

class FilterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/zm-filter-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    log_ = std::make_unique<Logger>("filter_test", dir_ + "/maillog", false);
    message_ = dir_ + "/msg";
    std::ofstream(message_) << "Subject: hello\n\nbody\n";
  }
  void TearDown() override {
    filter_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Writes an executable /bin/sh script and makes a filter of it.
  ContentFilter& Make(const std::string& body, int timeout_sec = 20,
                      int processes = 2) {
    std::string path = dir_ + "/filter" + std::to_string(++scripts_);
    std::ofstream(path) << "#!/bin/sh\n" << body;
    chmod(path.c_str(), 0755);
    FilterOptions o{path, timeout_sec, processes};
    auto f = MakeContentFilter(o, *log_);
    EXPECT_TRUE(f.ok()) << f.status();
    filter_ = std::move(*f);
    return *filter_;
  }

  std::string Log() {
    auto s = fs::ReadFile(dir_ + "/maillog", 1 << 20);
    return s.ok() ? *s : "";
  }

  std::string dir_, message_;
  int scripts_ = 0;
  std::unique_ptr<Logger> log_;
  std::unique_ptr<ContentFilter> filter_;
};

TEST(ParseFilterAnswerTest, Forms) {
  FilterResult r = ParseFilterAnswer("0 ok");
  EXPECT_EQ(r.outcome, Outcome::kAccept);
  EXPECT_EQ(r.code, 250);
  r = ParseFilterAnswer("-1 550 5.7.1 spam detected");
  EXPECT_EQ(r.outcome, Outcome::kReject);
  EXPECT_EQ(r.code, 550);
  EXPECT_EQ(r.enhanced, "5.7.1");
  EXPECT_EQ(r.text, "spam detected");
  r = ParseFilterAnswer("-1 554 nope");
  EXPECT_EQ(r.code, 554);
  EXPECT_EQ(r.enhanced, "5.7.1");
  EXPECT_EQ(r.text, "nope");
  r = ParseFilterAnswer("-1 go away");
  EXPECT_EQ(r.outcome, Outcome::kReject);
  EXPECT_EQ(r.code, 550);
  EXPECT_EQ(r.text, "go away");
  r = ParseFilterAnswer("-1");
  EXPECT_EQ(r.outcome, Outcome::kReject);
  EXPECT_FALSE(r.text.empty());
  r = ParseFilterAnswer("-1 451 4.7.0 scanner busy");
  EXPECT_EQ(r.outcome, Outcome::kTempFail);
  EXPECT_EQ(r.code, 451);
  EXPECT_EQ(r.enhanced, "4.7.0");
  r = ParseFilterAnswer("-1 250 sneaky");  // not a refusal code: text
  EXPECT_EQ(r.outcome, Outcome::kReject);
  EXPECT_EQ(r.code, 550);
  r = ParseFilterAnswer("1 looks like a virus");
  EXPECT_EQ(r.outcome, Outcome::kFreeze);
  EXPECT_EQ(r.text, "looks like a virus");
  for (const char* bad : {"", "ok", "yes 0", "abc def", "--1 x"}) {
    r = ParseFilterAnswer(bad);
    EXPECT_EQ(r.outcome, Outcome::kTempFail) << bad;
    EXPECT_EQ(r.code, 451) << bad;
    EXPECT_EQ(r.enhanced, "4.7.1") << bad;
  }
  r = ParseFilterAnswer(std::string("-1 550 5.7.1 a\x01") + std::string(500, 'x'));
  EXPECT_LE(r.text.size(), 200u);
  EXPECT_EQ(r.text.find('\x01'), std::string::npos);
}

TEST_F(FilterTest, NoProgramMeansNoFilter) {
  ServerConfig config;
  auto f = MakeContentFilter(config, *log_);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(*f, nullptr);
  config.content_filter = dir_ + "/missing";
  EXPECT_FALSE(MakeContentFilter(config, *log_).ok());
  config.content_filter = "relative/prog";
  EXPECT_FALSE(MakeContentFilter(config, *log_).ok());
}

TEST_F(FilterTest, AcceptSeesThePathAndQueueId) {
  ContentFilter& f = Make(
      "echo '#hungry'\n"
      "while read path qid; do\n"
      "  if grep -q hello \"$path\" && [ \"$qid\" = Q1 ]; then echo '0 ok';\n"
      "  else echo '-1 550 5.7.1 wrong request'; fi\n"
      "  echo '#hungry'\n"
      "done\n");
  FilterResult r = f.Check(message_, "Q1");
  EXPECT_EQ(r.outcome, Outcome::kAccept) << r.text;
  // The same process answers the next message.
  r = f.Check(message_, "Q1");
  EXPECT_EQ(r.outcome, Outcome::kAccept) << r.text;
  r = f.Check(message_, "Q2");
  EXPECT_EQ(r.outcome, Outcome::kReject);
  size_t starts = 0;
  std::string log = Log();
  for (size_t at = 0; (at = log.find("content filter started", at)) !=
                      std::string::npos;
       ++at) {
    ++starts;
  }
  EXPECT_EQ(starts, 1u);
}

TEST_F(FilterTest, RejectAndFreeze) {
  ContentFilter& f = Make(
      "while read path qid; do\n"
      "  case $qid in R*) echo '-1 550 5.7.1 spam';; *) echo '1 suspicious';; "
      "esac\n"
      "done\n");
  FilterResult r = f.Check(message_, "R1");
  EXPECT_EQ(r.outcome, Outcome::kReject);
  EXPECT_EQ(r.code, 550);
  EXPECT_EQ(r.enhanced, "5.7.1");
  EXPECT_EQ(r.text, "spam");
  r = f.Check(message_, "F1");
  EXPECT_EQ(r.outcome, Outcome::kFreeze);
  EXPECT_EQ(r.text, "suspicious");
}

TEST_F(FilterTest, HangIsATempFailAndTheProcessIsReplaced) {
  // Hangs on its first message only; the fresh process it is replaced by
  // sees the marker file and answers.
  ContentFilter& f = Make(
      "while read path qid; do\n"
      "  if [ ! -e \"" + dir_ + "/hung\" ]; then touch \"" + dir_ +
          "/hung\"; sleep 600; fi\n"
      "  echo '0 ok'\n"
      "done\n",
      /*timeout_sec=*/1);
  FilterResult r = f.Check(message_, "Q1");
  EXPECT_EQ(r.outcome, Outcome::kTempFail);
  EXPECT_EQ(r.code, 451);
  EXPECT_EQ(r.enhanced, "4.7.1");
  r = f.Check(message_, "Q2");
  EXPECT_EQ(r.outcome, Outcome::kAccept) << r.text;
  EXPECT_NE(Log().find("no answer in 1 s"), std::string::npos);
}

TEST_F(FilterTest, DyingFilterIsATempFail) {
  ContentFilter& f = Make("read path qid\nexit 3\n");
  for (int i = 0; i < 3; ++i) {
    FilterResult r = f.Check(message_, "Q" + std::to_string(i));
    EXPECT_EQ(r.outcome, Outcome::kTempFail);
    EXPECT_EQ(r.code, 451);
  }
}

TEST_F(FilterTest, FilterThatExitsAtOnceIsATempFail) {
  ContentFilter& f = Make("exit 0\n");
  FilterResult r = f.Check(message_, "Q1");
  EXPECT_EQ(r.outcome, Outcome::kTempFail);
}

TEST_F(FilterTest, GarbageIsATempFail) {
  ContentFilter& f = Make(
      "while read path qid; do echo 'sure, why not'; done\n");
  FilterResult r = f.Check(message_, "Q1");
  EXPECT_EQ(r.outcome, Outcome::kTempFail);
  EXPECT_EQ(r.code, 451);
  EXPECT_NE(Log().find("garbled"), std::string::npos);
}

TEST_F(FilterTest, EndlessLineIsATempFail) {
  ContentFilter& f = Make(
      "read path qid; head -c 100000 /dev/zero | tr '\\0' x; sleep 600\n",
      /*timeout_sec=*/20);
  FilterResult r = f.Check(message_, "Q1");
  EXPECT_EQ(r.outcome, Outcome::kTempFail);
}

TEST_F(FilterTest, IdleFilterThatDiedIsRestartedTransparently) {
  // Answers one message, then leaves: the next Check starts a new one.
  ContentFilter& f = Make("read path qid\necho '0 ok'\nexit 0\n");
  for (int i = 0; i < 3; ++i) {
    FilterResult r = f.Check(message_, "Q" + std::to_string(i));
    // The process may still be exiting when the next Check comes; then
    // that Check sees EOF and fails temporarily. Never an accept of
    // something unchecked, and the one after works.
    if (r.outcome != Outcome::kAccept) {
      EXPECT_EQ(r.outcome, Outcome::kTempFail);
      r = f.Check(message_, "Q" + std::to_string(i));
      EXPECT_EQ(r.outcome, Outcome::kAccept);
    }
  }
}

TEST_F(FilterTest, ConcurrentChecksUseThePool) {
  ContentFilter& f = Make(
      "while read path qid; do echo \"0 ok $qid\"; done\n", 20,
      /*processes=*/3);
  std::vector<std::thread> threads;
  std::atomic<int> accepted{0};
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&f, &accepted, t, this] {
      for (int i = 0; i < 10; ++i) {
        std::string qid = "Q" + std::to_string(t) + "x" + std::to_string(i);
        FilterResult r = f.Check(message_, qid);
        if (r.outcome == Outcome::kAccept && r.text == "ok " + qid) ++accepted;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(accepted.load(), 60);
}

TEST_F(FilterTest, PathsWithSpacesAreRefused) {
  ContentFilter& f = Make("while read p q; do echo '0 ok'; done\n");
  EXPECT_EQ(f.Check(dir_ + "/a b", "Q1").outcome, Outcome::kTempFail);
  EXPECT_EQ(f.Check(message_, "Q\n0").outcome, Outcome::kTempFail);
}

}  // namespace
}  // namespace zm::smtpserver
