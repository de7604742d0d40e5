// `zmailer init` and the command line, through the real binary.
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include "cluster/conf/cluster_conf.h"
#include "node/config/mail_conf.h"
#include "node/spool/spool.h"
#include "node/zmailer/zmailer.h"
#include "tests/unit/zmailer/zmailer_test_util.h"

namespace zm::zmailer {
namespace {

using ztest::ReadAll;
using ztest::RunProgram;

const std::string kZmailer = std::string(ZM_BIN_DIR) + "/zmailer";

class ZmailerInitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tmp_ = ztest::MakeTempDir();
    node_ = tmp_ + "/node";
  }
  void TearDown() override { ztest::RemoveTree(tmp_); }

  ztest::RunResult Init(std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {
        kZmailer,          "init",        node_,
        "--node-id",       "t1",          "--hostname",
        "mx.test.example", "--smtp-port", "2600"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return RunProgram(argv);
  }

  std::string tmp_;
  std::string node_;
};

TEST_F(ZmailerInitTest, WritesEveryTemplateWithPlaceholdersFilled) {
  auto r = Init();
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("export ZMAILER_HOME=" + node_), std::string::npos)
      << r.out;

  const std::map<std::string, std::string> values = {
      {"HOSTNAME", "mx.test.example"},
      {"NODE_ID", "t1"},
      {"SMTP_ADDRESS", "127.0.0.1"},
      {"SMTP_PORT", "2600"},
      {"ADMIN_LISTEN", "127.0.0.1:8025"}};
  int templates = 0;
  for (const auto& e : std::filesystem::directory_iterator(ZM_DEFAULTS_DIR)) {
    if (!e.is_regular_file()) continue;
    std::string name = e.path().filename().string();
    if (name.starts_with(".") || name.ends_with("~")) continue;
    ++templates;
    std::string written = node_ + "/etc/" + name;
    ASSERT_TRUE(std::filesystem::exists(written)) << name;
    std::string want =
        SubstitutePlaceholders(ReadAll(e.path().string()), values);
    EXPECT_EQ(ReadAll(written), want) << name;
    for (const char* p :
         {"@HOSTNAME@", "@NODE_ID@", "@SMTP_ADDRESS@", "@SMTP_PORT@"}) {
      EXPECT_EQ(want.find(p), std::string::npos) << name << " keeps " << p;
    }
  }
  EXPECT_GE(templates, 2);  // at least mail.conf and cluster.conf

  for (const char* d : {"etc", "db", "spool", "log", "run", "mail"}) {
    EXPECT_TRUE(std::filesystem::is_directory(node_ + "/" + d)) << d;
  }
  for (auto f : spool::kFolders) {
    EXPECT_TRUE(
        std::filesystem::is_directory(node_ + "/spool/" + std::string(f)))
        << f;
  }

  // Our own templates parse with the real parsers.
  NodeDir node{node_};
  auto cc = cluster::LoadClusterConf(node);
  ASSERT_TRUE(cc.ok()) << cc.status();
  EXPECT_EQ(cc->node_id, "t1");
  EXPECT_FALSE(cc->Enabled());
  auto mc = config::LoadMailConf(node);
  ASSERT_TRUE(mc.ok()) << mc.status();
  EXPECT_EQ(mc->hostname, "mx.test.example");
  EXPECT_EQ(mc->mydomain, "test.example");
}

TEST_F(ZmailerInitTest, WritesACertificateOpenSslReads) {
  auto r = Init();
  ASSERT_EQ(r.code, 0) << r.err;
  std::string cert_path = node_ + "/etc/tls/smtpserver-cert.pem";
  std::string key_path = node_ + "/etc/tls/smtpserver-key.pem";

  struct stat st;
  ASSERT_EQ(::stat(key_path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  FILE* f = std::fopen(cert_path.c_str(), "r");
  ASSERT_NE(f, nullptr);
  X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  ASSERT_NE(cert, nullptr);
  f = std::fopen(key_path.c_str(), "r");
  ASSERT_NE(f, nullptr);
  EVP_PKEY* key = PEM_read_PrivateKey(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  ASSERT_NE(key, nullptr);
  EXPECT_EQ(X509_check_private_key(cert, key), 1);
  EXPECT_EQ(X509_verify(cert, key), 1);  // self-signed

  char cn[256] = {0};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn,
                            sizeof cn);
  EXPECT_STREQ(cn, "mx.test.example");
  EXPECT_EQ(X509_check_host(cert, "mx.test.example", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_host(cert, "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_host(cert, "other.example", 0, 0, nullptr), 0);
  EXPECT_EQ(X509_check_ip_asc(cert, "127.0.0.1", 0), 1);
  // About ten years.
  int days = 0, secs = 0;
  ASSERT_EQ(ASN1_TIME_diff(&days, &secs, nullptr, X509_get0_notAfter(cert)), 1);
  EXPECT_GT(days, 3640);
  EXPECT_LE(days, 3651);
  X509_free(cert);
  EVP_PKEY_free(key);

  if (std::filesystem::exists("/usr/bin/openssl")) {
    auto o = RunProgram(
        {"/usr/bin/openssl", "x509", "-noout", "-subject", "-in", cert_path});
    EXPECT_EQ(o.code, 0) << o.err;
    EXPECT_NE(o.out.find("CN = mx.test.example"), std::string::npos) << o.out;
  }
}

TEST_F(ZmailerInitTest, RefusesANonEmptyDirectoryWithoutForce) {
  std::filesystem::create_directories(node_);
  { std::ofstream(node_ + "/something") << "x"; }
  auto r = Init();
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("not empty"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--force"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_FALSE(std::filesystem::exists(node_ + "/etc"));

  r = Init({"--force"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(std::filesystem::exists(node_ + "/etc/mail.conf"));
  EXPECT_TRUE(std::filesystem::exists(node_ + "/something"));
}

TEST_F(ZmailerInitTest, InitTwiceNeedsForce) {
  ASSERT_EQ(Init().code, 0);
  EXPECT_EQ(Init().code, 1);
}

TEST_F(ZmailerInitTest, RejectsBadOptionValues) {
  auto r = RunProgram({kZmailer, "init", node_, "--node-id", "bad id"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("--node-id"), std::string::npos) << r.err;
  r = RunProgram({kZmailer, "init", node_, "--smtp-address", "not-an-ip"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("--smtp-address"), std::string::npos) << r.err;
  r = RunProgram({kZmailer, "init", node_, "--smtp-port", "70000"});
  EXPECT_EQ(r.code, 64) << r.err;
  EXPECT_FALSE(std::filesystem::exists(node_));
}

TEST(ZmailerCliTest, BadSubcommandOrArgumentsExit64) {
  for (std::vector<std::string> argv : {
           std::vector<std::string>{kZmailer, "bogus"},
           std::vector<std::string>{kZmailer, "start", "--bogus"},
           std::vector<std::string>{kZmailer, "init"},
           std::vector<std::string>{kZmailer, "status", "extra"},
       }) {
    auto r = RunProgram(argv);
    EXPECT_EQ(r.code, 64) << argv[1] << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_TRUE(r.err.starts_with("zmailer: ")) << r.err;
  }
  auto help = RunProgram({kZmailer, "--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("freeze"), std::string::npos);
}

TEST(ZmailerCliTest, NoNodeIsAClearError) {
  std::string tmp = ztest::MakeTempDir();
  auto r = RunProgram({kZmailer, "-C", tmp + "/nothing", "status"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("zmailer init"), std::string::npos) << r.err;
  // ZMAILER_HOME selects the node as -C does.
  r = RunProgram({kZmailer, "status"}, {"ZMAILER_HOME=" + tmp + "/nothing2"});
  EXPECT_NE(r.err.find(tmp + "/nothing2"), std::string::npos) << r.err;
  ztest::RemoveTree(tmp);
}

TEST(SubstitutePlaceholdersTest, ReplacesOnlyKnownNames) {
  std::map<std::string, std::string> v = {{"HOSTNAME", "mx"}, {"PORT", "25"}};
  EXPECT_EQ(SubstitutePlaceholders("a @HOSTNAME@:@PORT@", v), "a mx:25");
  EXPECT_EQ(SubstitutePlaceholders("root@x.y @HOSTNAME@", v), "root@x.y mx");
  EXPECT_EQ(SubstitutePlaceholders("@OTHER@ @", v), "@OTHER@ @");
  EXPECT_EQ(SubstitutePlaceholders("user@@HOSTNAME@", v), "user@mx");
  EXPECT_EQ(SubstitutePlaceholders("", v), "");
}

}  // namespace
}  // namespace zm::zmailer
