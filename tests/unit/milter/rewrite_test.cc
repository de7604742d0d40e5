// RewriteStaged: a milter's end-of-message changes applied to a staged
// message file.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "node/mail/envelope.h"
#include "node/smtpserver/smtpserver_milter.h"

namespace zm::smtpserver {
namespace {

using milter::Modification;
using T = Modification::Type;

class RewriteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/milter_rewrite.XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    path_ = dir_ + "/Q1";
  }
  void TearDown() override {
    ::unlink(path_.c_str());
    ::unlink((dir_ + "/body").c_str());
    ::rmdir(dir_.c_str());
  }
  void Write(const std::string& message) {
    mail::Envelope env;
    env.queue_id = "Q1";
    env.arrival_usec = 1;
    env.sender = "alice@example.org";
    env.recipients = {{"bob@example.net", "", ""},
                      {"carol@example.net", "", ""}};
    env.size = message.size();
    std::ofstream(path_) << mail::SerializeEnvelope(env, nullptr) << message;
  }
  mail::MessageFile Read(std::string* message) {
    std::stringstream ss;
    ss << std::ifstream(path_).rdbuf();
    std::string file = ss.str();
    auto mf = mail::ParseMessageFile(file);
    EXPECT_TRUE(mf.ok()) << mf.status();
    *message = file.substr(mf->body_offset);
    return *mf;
  }
  static Modification M(T type, std::string name, std::string value = "",
                        uint32_t index = 0) {
    Modification m;
    m.type = type;
    m.name = std::move(name);
    m.value = std::move(value);
    m.index = index;
    return m;
  }
  std::string dir_, path_;
};

TEST_F(RewriteTest, HeadersAndEnvelope) {
  Write(
      "Received: from x\n\tby y\nSubject: hi\nTo: bob\nSubject: two\n\n"
      "body line\n\nmore\n");
  StagedEdits e;
  e.headers = {M(T::kAddHeader, "X-Spam", "yes\r\n\tfolded"),
               M(T::kInsertHeader, "DKIM-Signature", "v=1;\r\n b=abc", 0),
               M(T::kChangeHeader, "subject", "changed", 2),
               M(T::kChangeHeader, "To", "", 1)};
  e.envelope = {M(T::kDelRcpt, "<Carol@example.net>"),
                M(T::kAddRcpt, "<dave@example.com>"),
                M(T::kChangeFrom, "<bounce@example.org>")};
  Modification par = M(T::kAddRcptPar, "<erin@example.com>");
  par.args = "NOTIFY=NEVER";
  e.envelope.push_back(par);
  size_t n = 0;
  std::vector<std::string> log;
  ASSERT_TRUE(RewriteStaged(path_, e, &n, &log).ok());
  EXPECT_EQ(n, 3u);
  EXPECT_EQ(log.size(), 4u);
  std::string msg;
  mail::MessageFile mf = Read(&msg);
  EXPECT_EQ(msg,
            "DKIM-Signature: v=1;\n b=abc\n"
            "Received: from x\n\tby y\nSubject: hi\nSubject: changed\n"
            "X-Spam: yes\n\tfolded\n\nbody line\n\nmore\n");
  EXPECT_EQ(mf.envelope.queue_id, "Q1");
  EXPECT_EQ(mf.envelope.sender, "bounce@example.org");
  ASSERT_EQ(mf.envelope.recipients.size(), 3u);
  EXPECT_EQ(mf.envelope.recipients[0].address, "bob@example.net");
  EXPECT_EQ(mf.envelope.recipients[1].address, "dave@example.com");
  EXPECT_EQ(mf.envelope.recipients[2].notify, "NEVER");
}

TEST_F(RewriteTest, LeadingSpaceAndNoBody) {
  Write("Subject: x\n");  // no blank line, no body
  StagedEdits e;
  e.leading_space = true;
  e.headers = {M(T::kAddHeader, "X-A", " kept as is")};
  size_t n = 0;
  std::vector<std::string> log;
  ASSERT_TRUE(RewriteStaged(path_, e, &n, &log).ok());
  std::string msg;
  Read(&msg);
  EXPECT_EQ(msg, "Subject: x\nX-A: kept as is\n");
}

TEST_F(RewriteTest, ReplacedBody) {
  Write("Subject: x\n\nold body\n");
  std::ofstream(dir_ + "/body") << "new\nbody\n";
  StagedEdits e;
  e.body_path = dir_ + "/body";
  size_t n = 0;
  std::vector<std::string> log;
  ASSERT_TRUE(RewriteStaged(path_, e, &n, &log).ok());
  std::string msg;
  Read(&msg);
  EXPECT_EQ(msg, "Subject: x\n\nnew\nbody\n");
}

TEST_F(RewriteTest, BrokenFileIsAnError) {
  std::ofstream(path_) << "zmnode-message 1\nid Q1\n";  // no env-end
  StagedEdits e;
  size_t n = 0;
  std::vector<std::string> log;
  EXPECT_FALSE(RewriteStaged(path_, e, &n, &log).ok());
  EXPECT_FALSE(RewriteStaged(dir_ + "/missing", e, &n, &log).ok());
}

}  // namespace
}  // namespace zm::smtpserver
