#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include "node/common/fs.h"
#include "node/sendmail/sendmail.h"

namespace zm::sendmail {
namespace {

class SendmailFollowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/zm-follow-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    log_ = dir_ + "/maillog";
    out_ = dir_ + "/out";
    ASSERT_TRUE(fs::WriteFileAtomically(dir_, "maillog", "").ok());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void Append(const std::string& text) {
    int fd = ::open(log_.c_str(), O_WRONLY | O_APPEND);
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(fs::WriteAll(fd, text, log_).ok());
    ::close(fd);
  }
  bool Follow(uint64_t start, int timeout_ms, std::string* copied) {
    fs::UniqueFd out(::open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644));
    bool r = FollowMessage(log_, start, "Q1-t1", timeout_ms, out.get());
    *copied = fs::ReadFile(out_).value_or("");
    return r;
  }

  std::string dir_, log_, out_;
};

TEST_F(SendmailFollowTest, CopiesTheMessagesLinesUntilRemoved) {
  Append("Nov 20 23:00:00 h zmnode/router[1]: Q0-t1: from=<x>, nrcpt=1\n");
  uint64_t start = 62;
  Append(
      "Nov 20 23:00:01 h zmnode/router[1]: Q1-t1: from=<a@b>, size=3, "
      "nrcpt=2 (routed)\n"
      "Nov 20 23:00:01 h zmnode/router[1]: Q2-t1: from=<c@d>, nrcpt=1\n"
      "Nov 20 23:00:02 h zmnode/scheduler[2]: Q1-t1: to=<r@x>, "
      "relay=local, dsn=2.0.0, status=sent (delivered)\n"
      "Nov 20 23:00:03 h zmnode/scheduler[2]: Q1-t1: removed\n"
      "Nov 20 23:00:04 h zmnode/scheduler[2]: Q1-t1: after the end\n");
  std::string copied;
  EXPECT_TRUE(Follow(start, 5000, &copied));
  EXPECT_NE(copied.find("nrcpt=2 (routed)"), std::string::npos) << copied;
  EXPECT_NE(copied.find("status=sent"), std::string::npos);
  EXPECT_NE(copied.find("Q1-t1: removed"), std::string::npos);
  EXPECT_EQ(copied.find("Q2-t1"), std::string::npos);
  EXPECT_EQ(copied.find("Q0-t1"), std::string::npos);
  EXPECT_EQ(copied.find("after the end"), std::string::npos);
}

TEST_F(SendmailFollowTest, EndsWhenEveryRecipientHasAStatus) {
  Append(
      "x zmnode/router[1]: Q1-t1: from=<a@b>, nrcpt=2 (routed)\n"
      "x zmnode/scheduler[2]: Q1-t1: to=<a@x>, status=sent (ok)\n"
      "x zmnode/scheduler[2]: Q1-t1: to=<b@y>, status=deferred (later)\n");
  std::string copied;
  EXPECT_TRUE(Follow(0, 5000, &copied));
  EXPECT_NE(copied.find("status=deferred"), std::string::npos);
}

TEST_F(SendmailFollowTest, LinesWrittenWhileFollowingArrive) {
  Append("x zmnode/router[1]: Q1-t1: from=<a@b>, nrcpt=1 (routed)\n");
  std::thread writer([this] {
    Append("x zmnode/scheduler[2]: Q1-t1: to=<a@x>, status=bounced (no)\n");
  });
  std::string copied;
  EXPECT_TRUE(Follow(0, 30000, &copied));
  writer.join();
  EXPECT_NE(copied.find("status=bounced"), std::string::npos);
}

TEST_F(SendmailFollowTest, GivesUpAtTheTimeout) {
  Append("x zmnode/router[1]: Q1-t1: from=<a@b>, nrcpt=1 (routed)\n");
  std::string copied;
  EXPECT_FALSE(Follow(0, 0, &copied));
  EXPECT_NE(copied.find("routed"), std::string::npos);
}

}  // namespace
}  // namespace zm::sendmail
