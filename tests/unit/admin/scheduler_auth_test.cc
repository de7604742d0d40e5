#include "node/admin/scheduler_auth.h"

#include <gtest/gtest.h>

#include "node/common/strings.h"

namespace zm::admin {
namespace {

constexpr char kSeed[] =
    "# comment\n"
    "nobody:nobody:SNMP QQ TT "
    "ETRN:[ipv6:::1]/128,[127.0.0.1]/32,[194.252.70.162]/32\n"
    "#root:zzzzzz:ALL:[127.0.0.1]/32\n"
    "etrn:zzETRNzz:ETRN:[0.0.0.0]/0,[ipv6:::0]/0\n"
    "ops:pw1:ALL:[10.1.0.0]/16 [2001:db8::]/32\n"
    "ops:pw2:QQ:[0.0.0.0]/0\n";

PeerAddress Addr(const char* s) {
  auto a = PeerAddress::Parse(s);
  EXPECT_TRUE(a.has_value()) << s;
  return a.value_or(PeerAddress{});
}

TEST(SchedulerAuthTest, SeedLinesAndFirstMatchWins) {
  auto auth = ParseSchedulerAuth(kSeed, "scheduler.auth");
  ASSERT_TRUE(auth.ok()) << auth.status();
  ASSERT_EQ(auth->entries.size(), 4u);

  const AuthEntry* e = auth->Find("nobody", PeerAddress::Local());
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->password, "nobody");
  EXPECT_EQ(e->tokens, kTokenSnmp | kTokenQq | kTokenTt | kTokenEtrn);
  EXPECT_NE(auth->Find("nobody", Addr("194.252.70.162")), nullptr);
  EXPECT_NE(auth->Find("nobody", Addr("::1")), nullptr);
  EXPECT_EQ(auth->Find("nobody", Addr("194.252.70.163")), nullptr);
  EXPECT_EQ(auth->Find("root", PeerAddress::Local()),
            nullptr);  // commented out

  EXPECT_NE(auth->Find("etrn", Addr("203.0.113.9")), nullptr);
  EXPECT_NE(auth->Find("etrn", Addr("2001:db8::5")), nullptr);

  const AuthEntry* ops_in = auth->Find("ops", Addr("10.1.200.3"));
  ASSERT_NE(ops_in, nullptr);
  EXPECT_EQ(ops_in->password, "pw1");
  EXPECT_EQ(auth->Find("ops", Addr("2001:db8:1::1"))->password, "pw1");
  const AuthEntry* ops_out = auth->Find("ops", Addr("10.2.0.1"));
  ASSERT_NE(ops_out, nullptr);
  EXPECT_EQ(ops_out->password, "pw2");
  EXPECT_EQ(ops_out->tokens, kTokenQq);
  // An IPv4-mapped IPv6 peer is its IPv4 address.
  EXPECT_EQ(auth->Find("ops", Addr("::ffff:10.1.0.1"))->password, "pw1");
}

TEST(SchedulerAuthTest, Errors) {
  auto bad = [](const char* text) {
    auto a = ParseSchedulerAuth(text, "scheduler.auth");
    EXPECT_FALSE(a.ok()) << text;
    return a.ok() ? std::string() : Message(a.status());
  };
  EXPECT_EQ(bad("a:b:QQ\n"),
            "scheduler.auth:1: expected user:password:TOKENS:[ip]/len,...");
  EXPECT_EQ(bad("\na:b:QQ XX:[127.0.0.1]/32\n"),
            "scheduler.auth:2: unknown token 'XX'");
  EXPECT_EQ(bad("a:b:QQ:[127.0.0.1]/33\n"),
            "scheduler.auth:1: bad address mask '[127.0.0.1]/33' ([ip]/len)");
  EXPECT_EQ(bad("a:b:QQ:[foo]/8\n"),
            "scheduler.auth:1: bad address mask '[foo]/8' ([ip]/len)");
  EXPECT_EQ(bad("a:b:QQ:\n"),
            "scheduler.auth:1: no address masks (e.g. [127.0.0.1]/32)");
}

TEST(SchedulerAuthTest, CommandTokens) {
  EXPECT_EQ(RequiredToken("SHOW QUEUE SHORT"), kTokenQq);
  EXPECT_EQ(RequiredToken("show queue threads"), kTokenTt);
  EXPECT_EQ(RequiredToken("SHOW THREAD smtp example.net"), kTokenTt);
  EXPECT_EQ(RequiredToken("SHOW SNMP"), kTokenSnmp);
  EXPECT_EQ(RequiredToken("SHOW COUNTERS"), kTokenSnmp);
  EXPECT_EQ(RequiredToken("SHOW MESSAGES"), kTokenQq);
  EXPECT_EQ(RequiredToken("ETRN example.net"), kTokenEtrn);
  EXPECT_EQ(RequiredToken("RUNQ"), kTokenEtrn);
  EXPECT_EQ(RequiredToken("KILL MSG x"), kTokenKill);
  EXPECT_EQ(RequiredToken("QUIT"), 0u);
  EXPECT_EQ(RequiredToken("FROB"), kTokenAll);
}

TEST(SchedulerAuthTest, Md5) {
  EXPECT_EQ(Md5Hex(""), "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(Md5Hex("<1896.697170952@dbc.mtview.ca.us>tanstaaf"),
            "c4c9334bac560ecc979e58001b3e22fb");  // RFC 1939's APOP example
}

}  // namespace
}  // namespace zm::admin
