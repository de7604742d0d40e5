#include <gtest/gtest.h>

#include <string>

#include "node/smtpserver/smtpserver_ident.h"

namespace zm::smtpserver {
namespace {

using Kind = IdentReply::Kind;

TEST(Ident, QueryNamesTheClientPortFirst) {
  EXPECT_EQ(IdentQuery(4711, 25), "4711 , 25\r\n");
}

TEST(Ident, UserId) {
  IdentReply r = ParseIdentReply("4711 , 25 : USERID : UNIX : alice", 4711, 25);
  ASSERT_EQ(r.kind, Kind::kUserId) << r.error;
  EXPECT_EQ(r.user, "alice");
  EXPECT_EQ(r.opsys, "UNIX");
  // No spaces, a character set, a user id holding colons and spaces.
  r = ParseIdentReply("4711,25:userid:OTHER , US-ASCII:  x:y z ", 4711, 25);
  ASSERT_EQ(r.kind, Kind::kUserId) << r.error;
  EXPECT_EQ(r.user, "x:y z");
  EXPECT_EQ(r.opsys, "OTHER , US-ASCII");
  // 512 characters is the most.
  r = ParseIdentReply("1,2:USERID:UNIX:" + std::string(512, 'u'), 1, 2);
  EXPECT_EQ(r.kind, Kind::kUserId);
}

TEST(Ident, Errors) {
  for (const char* e : {"NO-USER", "HIDDEN-USER", "INVALID-PORT",
                        "UNKNOWN-ERROR", "X-LOCAL-POLICY"}) {
    IdentReply r =
        ParseIdentReply(std::string("4711 , 25 : ERROR : ") + e, 4711, 25);
    ASSERT_EQ(r.kind, Kind::kError) << e << ": " << r.error;
    EXPECT_EQ(r.error, e);
  }
}

TEST(Ident, GarbageIsInvalid) {
  struct Case {
    std::string line;
    std::string why;
  };
  const Case cases[] = {
      {"", "not a port pair"},
      {"hello there", "not a port pair"},
      {"4711 , 26 : USERID : UNIX : alice", "not the port pair"},
      {"4712 , 25 : USERID : UNIX : alice", "not the port pair"},
      {"4711 25 : USERID : UNIX : alice", "not the port pair"},
      {"4711 , 25x : USERID : UNIX : alice", "not the port pair"},
      {"4711 , 25 : OK : alice", "unknown reply type"},
      {"4711 , 25 : USERID : alice", "USERID without a user id"},
      {"4711 , 25 : USERID : UNIX : ", "empty user id"},
      {"4711 , 25 : USERID : U NIX : alice", "bad operating system"},
      {"4711 , 25 : USERID : UNIX , : alice", "bad character set"},
      {"4711 , 25 : USERID : UNIX : al\x01ice", "unprintable user id"},
      {"4711 , 25 : USERID : UNIX : al\xc3\xa9", "unprintable user id"},
      {"4711 , 25 : USERID : UNIX : " + std::string(513, 'u'),
       "user id too long"},
      {"4711 , 25 : ERROR : NO USER", "bad error type"},
      {"4711 , 25 : ERROR : BUSY", "unknown error type"},
      {"4711 , 25 : ERROR :", "bad error type"},
      {std::string("4711 , 25 : USERID : UNIX : a") + '\0' + "b",
       "control character"},
      {"4711 , 25 : USERID : UNIX : " + std::string(1000, 'u'),
       "reply too long"},
  };
  for (const Case& c : cases) {
    IdentReply r = ParseIdentReply(c.line, 4711, 25);
    EXPECT_EQ(r.kind, Kind::kInvalid) << c.line;
    EXPECT_NE(r.error.find(c.why), std::string::npos)
        << c.line << " -> " << r.error;
  }
}

}  // namespace
}  // namespace zm::smtpserver
