#include "node/smtpserver/smtpserver_mailauth.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "node/common/fs.h"
#include "node/common/log.h"
#include "node/mailauth/mailauth.h"
#include "node/smtpserver/smtpserver_config.h"
#include "node/smtpserver/smtpserver_policy.h"

namespace zm::smtpserver {
namespace {

class MailAuthConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char t[] = "/tmp/zm-mailauth-XXXXXX";
    node_.home = ::mkdtemp(t);
    ASSERT_TRUE(fs::MakeDirs(node_.etc()).ok());
  }
  void TearDown() override { std::filesystem::remove_all(node_.home); }

  absl::StatusOr<ServerConfig> Parse(const std::string& text) {
    EXPECT_TRUE(
        fs::WriteFileAtomically(node_.etc(), "smtpserver.conf", text).ok());
    return ParseServerConfig(node_.etc_file("smtpserver.conf"));
  }

  NodeDir node_;
  Logger log_{"test", "", true};
};

TEST_F(MailAuthConfigTest, KeysAreParsed) {
  auto c = Parse(
      "PARAM spf-threshold SoftFail\n"
      "PARAM spf-received\n"
      "PARAM dkim-verify\n"
      "PARAM dmarc on\n"
      "PARAM dmarc-quarantine folder quarantine\n"
      "PARAM dkim-keys $MAILVAR/keys\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->mailauth.spf_threshold, "softfail");
  EXPECT_TRUE(c->mailauth.spf_received);
  EXPECT_TRUE(c->mailauth.dkim_verify);
  EXPECT_TRUE(c->mailauth.dmarc);
  EXPECT_FALSE(c->mailauth.spf);
  EXPECT_EQ(c->mailauth.quarantine_folder, "quarantine");
  EXPECT_EQ(c->mailauth.dkim_keys, "$MAILVAR/keys");

  auto d = Parse("PARAM dmarc-quarantine freeze\nPARAM dmarc off\n");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->mailauth.quarantine_folder, "");
  EXPECT_FALSE(d->mailauth.dmarc);
}

TEST_F(MailAuthConfigTest, BadValuesNameTheLine) {
  for (const char* bad :
       {"\nPARAM dmarc-quarantine folder\n", "\nPARAM dmarc-quarantine drop\n",
        "\nPARAM dmarc-quarantine folder Bad/Name\n", "\nPARAM dmarc maybe\n",
        "\nPARAM spf-threshold hardfail\n", "\nPARAM dkim-keys\n"}) {
    auto c = Parse(bad);
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_NE(c.status().message().find("smtpserver.conf:2: "),
              std::string::npos)
        << c.status();
  }
}

TEST_F(MailAuthConfigTest, NothingConfiguredIsNoMailAuth) {
  ServerConfig c;
  auto m = MakeMailAuth(c, node_, nullptr, log_, "mx.test");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(*m, nullptr);
}

TEST_F(MailAuthConfigTest, KeyTableErrorsStopTheStart) {
  ServerConfig c;
  // etc/dkim-keys is picked up when it exists, and must be right.
  ASSERT_TRUE(
      fs::WriteFileAtomically(node_.etc(), "dkim-keys", "example.org s1\n")
          .ok());
  auto m = MakeMailAuth(c, node_, nullptr, log_, "mx.test");
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("dkim-keys:1: "), std::string::npos)
      << m.status();

  auto key = mailauth::GenerateKey(true, 0);
  ASSERT_TRUE(key.ok());
  ASSERT_TRUE(
      fs::WriteFileAtomically(node_.etc(), "k.pem", key->private_pem, 0600)
          .ok());
  ASSERT_TRUE(fs::WriteFileAtomically(node_.etc(), "dkim-keys",
                                      "example.org s1 k.pem\n")
                  .ok());
  m = MakeMailAuth(c, node_, nullptr, log_, "mx.test");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_NE(*m, nullptr);

  // A named table must exist.
  c.mailauth.dkim_keys = "missing-table";
  m = MakeMailAuth(c, node_, nullptr, log_, "mx.test");
  EXPECT_FALSE(m.ok());
}

TEST(MailAuthPolicyTest, ActionAttributesAreCheckedInSmtpPolicy) {
  auto ok = Policy::Parse("smtp-policy.src",
                          "[192.0.2.0]/24 spf-fail freeze dkim-none Tag\n"
                          "[192.0.2.9]/32 mailauth -\n"
                          "example.org dmarc-none reject\n",
                          {});
  ASSERT_TRUE(ok.ok()) << ok.status();
  PolicyAttrs a = ok->ForIp("192.0.2.7");
  EXPECT_EQ(a.Get("spf-fail"), "freeze");
  EXPECT_EQ(ParseAuthAction("freeze"), AuthAction::kFreeze);
  EXPECT_EQ(ok->ForIp("192.0.2.9").Flag("mailauth"), false);
  EXPECT_EQ(ok->ForAddress("a@example.org").Get("dmarc-none"), "reject");
  auto bad = Policy::Parse("smtp-policy.src",
                           "# x\n[192.0.2.0]/24 spf-fail bounce\n", {});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("smtp-policy.src:2: "),
            std::string::npos)
      << bad.status();
  EXPECT_FALSE(Policy::Parse("p", "[192.0.2.0]/24 dkim-fails reject\n", {})
                   .ok());
}

}  // namespace
}  // namespace zm::smtpserver
