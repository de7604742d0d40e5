// PARAM milter lines in smtpserver.conf: parsed in order; mistakes are
// "file:line: what" errors.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>

#include "node/smtpserver/smtpserver_config.h"

namespace zm::smtpserver {
namespace {

class MilterConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/milter_conf.XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    path_ = dir_ + "/smtpserver.conf";
  }
  void TearDown() override {
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }
  absl::StatusOr<ServerConfig> Parse(const std::string& text) {
    std::ofstream(path_) << text;
    return ParseServerConfig(path_);
  }
  std::string dir_, path_;
};

TEST_F(MilterConfigTest, MiltersInOrder) {
  auto c = Parse(
      "PARAM BindPort 2525\n"
      "PARAM milter dkim inet:127.0.0.1:8891 timeout=5 default=accept\n"
      "PARAM milter spam unix:/run/rspamd.sock listeners=smtp\n"
      "*  999  veR\n");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->milters.size(), 2u);
  EXPECT_EQ(c->milters[0].name, "dkim");
  EXPECT_EQ(c->milters[0].on_failure, milter::Spec::Default::kAccept);
  EXPECT_EQ(c->milters[1].address, "unix:/run/rspamd.sock");
  EXPECT_EQ(c->milters[1].listeners, std::vector<std::string>{"smtp"});
}

TEST_F(MilterConfigTest, ErrorsNameTheLine) {
  const char* bad[] = {
      "PARAM milter\n",
      "PARAM milter onlyname\n",
      "PARAM milter m ftp:1.2.3.4:5\n",
      "PARAM milter m inet:127.0.0.1:8891 default=sometimes\n",
      "PARAM milter m inet:127.0.0.1:8891 timeout=-1\n",
      "PARAM milter m inet:127.0.0.1:8891\nPARAM milter m unix:/x\n",
  };
  for (const char* text : bad) {
    auto c = Parse(std::string("# comment\n") + text);
    ASSERT_FALSE(c.ok()) << text;
    std::string msg(c.status().message());
    EXPECT_NE(msg.find(path_ + ":"), std::string::npos) << msg;
    EXPECT_TRUE(msg.find(":2:") != std::string::npos ||
                msg.find(":3:") != std::string::npos)
        << msg;
  }
}

}  // namespace
}  // namespace zm::smtpserver
