// The server TLS context: which files it uses, and when TLS is off.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "node/smtpserver/smtpserver_tls.h"

namespace zm::smtpserver {
namespace {

class TlsTest : public ::testing::Test {
 protected:
  TlsTest() {
    char t[] = "/tmp/zm-tls-XXXXXX";
    dir_ = ::mkdtemp(t);
    node_.home = dir_;
    std::filesystem::create_directories(dir_ + "/etc/tls");
  }
  ~TlsTest() override { std::filesystem::remove_all(dir_); }
  // A self-signed certificate at etc/tls/smtpserver-{cert,key}.pem.
  void MakeCert() {
    std::string cmd =
        "openssl req -x509 -newkey rsa:2048 -nodes -days 1 "
        "-subj /CN=mx.test -keyout " +
        dir_ + "/etc/tls/smtpserver-key.pem -out " + dir_ +
        "/etc/tls/smtpserver-cert.pem 2>/dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  }

  std::string dir_;
  NodeDir node_;
};

TEST_F(TlsTest, NoCertificateMeansTlsOff) {
  auto ctx = MakeTlsContext(ServerConfig(), node_);
  ASSERT_TRUE(ctx.ok()) << ctx.status();
  EXPECT_EQ(*ctx, nullptr);
}

TEST_F(TlsTest, MissingConfiguredCertificateIsAnError) {
  ServerConfig c;
  c.tls.cert_file = "$MAILVAR/tls/other.pem";
  auto ctx = MakeTlsContext(c, node_);
  ASSERT_FALSE(ctx.ok());
  EXPECT_NE(std::string(ctx.status().message()).find("other.pem"),
            std::string::npos);
  ServerConfig smtps;
  smtps.smtps_port = 465;  // implicit TLS needs a certificate
  EXPECT_FALSE(MakeTlsContext(smtps, node_).ok());
}

TEST_F(TlsTest, DefaultCertificateIsUsedWithTls12AndUp) {
  MakeCert();
  auto ctx = MakeTlsContext(ServerConfig(), node_);
  ASSERT_TRUE(ctx.ok()) << ctx.status();
  ASSERT_NE(*ctx, nullptr);
  SSL_CTX* c = (*ctx)->native_handle();
  EXPECT_EQ(SSL_CTX_get_min_proto_version(c), TLS1_2_VERSION);
  EXPECT_EQ(SSL_CTX_get_verify_mode(c), SSL_VERIFY_NONE);
  EXPECT_EQ(SSL_CTX_get_session_cache_mode(c), SSL_SESS_CACHE_OFF);
}

TEST_F(TlsTest, AskCertAndSessionCache) {
  MakeCert();
  ServerConfig c;
  c.tls.ask_cert = true;
  c.tls.use_scache = true;
  c.tls.scache_timeout_sec = 77;
  auto ctx = MakeTlsContext(c, node_);
  ASSERT_TRUE(ctx.ok()) << ctx.status();
  SSL_CTX* s = (*ctx)->native_handle();
  EXPECT_TRUE(SSL_CTX_get_verify_mode(s) & SSL_VERIFY_PEER);
  EXPECT_FALSE(SSL_CTX_get_verify_mode(s) & SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
  EXPECT_EQ(SSL_CTX_get_session_cache_mode(s), SSL_SESS_CACHE_SERVER);
  EXPECT_EQ(SSL_CTX_get_timeout(s), 77);
}

TEST_F(TlsTest, KeyNotMatchingIsAnError) {
  MakeCert();
  std::string other = "openssl genrsa -out " + dir_ +
                      "/etc/tls/smtpserver-key.pem 2048 2>/dev/null";
  ASSERT_EQ(std::system(other.c_str()), 0);
  EXPECT_FALSE(MakeTlsContext(ServerConfig(), node_).ok());
}

}  // namespace
}  // namespace zm::smtpserver
