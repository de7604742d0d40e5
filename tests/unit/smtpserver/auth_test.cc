// The AUTH backends: crypt(3) credentials file and SMTP-auth-pipe.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "node/common/log.h"
#include "node/smtpserver/smtpserver_auth.h"

namespace zm::smtpserver {
namespace {

// `openssl passwd -6 -salt testsalt secret`
constexpr char kSecretHash[] =
    "$6$testsalt$51yaaBMXXXt5vK522YOlIMZ267vqHtMIzc2klcsu3EEv/"
    "bkRDU9g3UmkypXf.NvlpPpIPK1nX5zdbCeJBiQbB/";

class AuthTest : public ::testing::Test {
 protected:
  AuthTest() : log_("smtpserver", "", false) {
    char t[] = "/tmp/zm-auth-XXXXXX";
    dir_ = ::mkdtemp(t);
    node_.home = dir_;
    std::filesystem::create_directories(dir_ + "/etc");
  }
  ~AuthTest() override { std::filesystem::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& text,
                    int mode = 0644) {
    std::string p = dir_ + "/" + name;
    std::ofstream(p) << text;
    ::chmod(p.c_str(), mode);
    return p;
  }

  std::string dir_;
  NodeDir node_;
  Logger log_;
};

TEST_F(AuthTest, FileAcceptsRightPasswordOnly) {
  std::string p = Write("etc/smtp-auth.passwd",
                        std::string("# users\nalice:") + kSecretHash + "\n");
  auto a = MakeAuthenticator(ServerConfig(), node_, log_);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_NE(*a, nullptr);
  EXPECT_EQ((*a)->Verify("alice", "secret").value_or(false), true);
  EXPECT_EQ((*a)->Verify("alice", "Secret").value_or(true), false);
  EXPECT_EQ((*a)->Verify("alice", "").value_or(true), false);
  EXPECT_EQ((*a)->Verify("bob", "secret").value_or(true), false);
  EXPECT_EQ((*a)->Verify("alice", std::string("secret\0x", 8)).value_or(true),
            false);
}

TEST_F(AuthTest, NoBackendConfiguredIsNull) {
  auto a = MakeAuthenticator(ServerConfig(), node_, log_);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(*a, nullptr);
}

TEST_F(AuthTest, ConfiguredFileMustExist) {
  ServerConfig c;
  c.auth_file = "missing.passwd";
  EXPECT_FALSE(MakeAuthenticator(c, node_, log_).ok());
}

TEST_F(AuthTest, BadLinesAreFileLineErrors) {
  Write("etc/smtp-auth.passwd", "alice:$6$x$y\nbob:plaintext\n");
  auto a = MakeAuthenticator(ServerConfig(), node_, log_);
  ASSERT_FALSE(a.ok());
  EXPECT_NE(std::string(a.status().message()).find("smtp-auth.passwd:2:"),
            std::string::npos)
      << a.status();
  Write("etc/smtp-auth.passwd", "alice:$6$x$y\nalice:$6$x$z\n");
  EXPECT_FALSE(MakeAuthenticator(ServerConfig(), node_, log_).ok());
  Write("etc/smtp-auth.passwd", "nocolon\n");
  EXPECT_FALSE(MakeAuthenticator(ServerConfig(), node_, log_).ok());
}

TEST_F(AuthTest, PipeProgramDecides) {
  // Argument: the user; stdin: the password. 0 valid, 1 wrong, 3 broken.
  Write("check.sh",
        "#!/bin/sh\nread pw\n"
        "case \"$1:$pw\" in\n"
        "  alice:secret) exit 0;;\n"
        "  broken:*) exit 3;;\n"
        "  hang:*) exec sleep 30;;\n"
        "  *) exit 1;;\n"
        "esac\n",
        0755);
  ServerConfig c;
  c.auth_pipe = "$MAILHOME/check.sh";
  c.auth_pipe_timeout_sec = 1;
  auto a = MakeAuthenticator(c, node_, log_);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_NE(*a, nullptr);
  EXPECT_EQ((*a)->Verify("alice", "secret").value_or(false), true);
  EXPECT_EQ((*a)->Verify("alice", "wrong").value_or(true), false);
  EXPECT_EQ((*a)->Verify("mallory", "secret").value_or(true), false);
  // The user name is an argument, never shell text.
  EXPECT_EQ((*a)->Verify("alice;exit 0", "x").value_or(true), false);
  auto broken = (*a)->Verify("broken", "x");
  EXPECT_TRUE(absl::IsUnavailable(broken.status())) << broken.status();
  auto hang = (*a)->Verify("hang", "x");
  EXPECT_TRUE(absl::IsUnavailable(hang.status())) << hang.status();
}

TEST_F(AuthTest, PipeMustBeExecutable) {
  Write("check.sh", "#!/bin/sh\nexit 0\n", 0644);
  ServerConfig c;
  c.auth_pipe = "$MAILHOME/check.sh";
  EXPECT_FALSE(MakeAuthenticator(c, node_, log_).ok());
}

}  // namespace
}  // namespace zm::smtpserver
