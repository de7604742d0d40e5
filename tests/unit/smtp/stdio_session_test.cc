// sendmail -bs: RunStdioSession over pipes, into a real spool.
#include "node/smtp/stdio_session.h"

#include <gtest/gtest.h>
#include <sysexits.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "node/common/fs.h"
#include "node/mail/envelope.h"

namespace zm::smtp {
namespace {

TEST(StdioSession, SubmitsLikeTheServer) {
  char t[] = "/tmp/zm-stdio-XXXXXX";
  std::string dir = ::mkdtemp(t);
  for (const char* d : {"etc", "spool/public", "spool/router", "log"}) {
    std::filesystem::create_directories(dir + "/" + d);
  }
  std::ofstream(dir + "/etc/mail.conf") << "hostname=mx.test\n";
  std::ofstream(dir + "/etc/cluster.conf") << "node-id t1\n";
  NodeDir node{dir};
  Logger log("sendmail", node.maillog(), false);

  int in[2], out[2];
  ASSERT_EQ(::pipe(in), 0);
  ASSERT_EQ(::pipe(out), 0);
  std::string input =
      "HELO me\nMAIL FROM:<alice>\nRCPT TO:<root>\nRCPT TO:<x@far.example>\n"
      "DATA\nSubject: hi\n\n..x\n.\nQUIT\n";
  ASSERT_TRUE(fs::WriteAll(in[1], input, "pipe").ok());
  ::close(in[1]);
  int rc = RunStdioSession(node, log, "alice", in[0], out[1]);
  ::close(out[1]);
  std::string replies;
  char buf[4096];
  for (ssize_t n; (n = ::read(out[0], buf, sizeof buf)) > 0;)
    replies.append(buf, n);
  ::close(in[0]);
  ::close(out[0]);
  EXPECT_EQ(rc, EX_OK);
  EXPECT_NE(replies.find("250 2.0.0 Ok: queued as "), std::string::npos)
      << replies;
  EXPECT_NE(replies.find("221 2.0.0 Bye"), std::string::npos) << replies;
  auto files = fs::ListDir(dir + "/spool/router");
  ASSERT_TRUE(files.ok());
  ASSERT_EQ(files->size(), 1u) << replies;
  auto data = fs::ReadFile(dir + "/spool/router/" + (*files)[0]);
  ASSERT_TRUE(data.ok());
  auto mf = mail::ParseMessageFile(*data);
  ASSERT_TRUE(mf.ok()) << mf.status();
  EXPECT_EQ(mf->envelope.sender, "alice");
  ASSERT_EQ(mf->envelope.recipients.size(), 2u);
  EXPECT_EQ(mf->envelope.recipients[0].address, "root");
  EXPECT_EQ(mf->envelope.local_user, "alice");
  EXPECT_EQ(mf->envelope.client_addr, "");
  EXPECT_NE(data->find("\nSubject: hi\n\n.x\n"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(StdioSession, BadConfigurationIsExConfig) {
  char t[] = "/tmp/zm-stdio-XXXXXX";
  std::string dir = ::mkdtemp(t);
  std::filesystem::create_directories(dir + "/etc");
  std::ofstream(dir + "/etc/mail.conf") << "hostname=mx.test\n";
  std::ofstream(dir + "/etc/smtpserver.conf") << "PARAM bogus\n";
  NodeDir node{dir};
  Logger log("sendmail", "", false);
  int out[2];
  ASSERT_EQ(::pipe(out), 0);
  EXPECT_EQ(RunStdioSession(node, log, "alice", -1, out[1]), EX_CONFIG);
  ::close(out[1]);
  char buf[256];
  ssize_t n = ::read(out[0], buf, sizeof buf);
  ::close(out[0]);
  EXPECT_EQ(std::string(buf, n > 0 ? n : 0).substr(0, 3), "421");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace zm::smtp
