#include "node/smtp/command.h"

#include <gtest/gtest.h>

#include "node/common/strings.h"
#include "node/smtp/line_reader.h"
#include "node/smtp/reply.h"
#include "node/smtp/sasl.h"

namespace zm::smtp {
namespace {

TEST(ParseCommand, VerbsAreCaseInsensitive) {
  Command c = ParseCommand("mAiL FROM:<a@b.example>");
  EXPECT_EQ(c.verb, Verb::kMail);
  EXPECT_EQ(c.arg, "FROM:<a@b.example>");
  EXPECT_EQ(ParseCommand("").verb, Verb::kEmpty);
  EXPECT_EQ(ParseCommand("   ").verb, Verb::kEmpty);
  EXPECT_EQ(ParseCommand("XYZZY").verb, Verb::kUnknown);
  EXPECT_EQ(ParseCommand("VRFY root").verb, Verb::kVrfy);
  EXPECT_EQ(ParseCommand("QUIT ").verb, Verb::kQuit);
}

struct PathCase {
  const char* arg;
  bool mail;  // MAIL (true) or RCPT
  std::optional<ReplyId> error;
  const char* address;
};

class PathTable : public ::testing::TestWithParam<PathCase> {};

TEST_P(PathTable, Parses) {
  const PathCase& t = GetParam();
  PathOptions o;
  PathResult r = t.mail ? ParseMailFrom(t.arg, o) : ParseRcptTo(t.arg, o);
  if (t.error) {
    ASSERT_FALSE(r.ok()) << t.arg;
    EXPECT_EQ(static_cast<int>(*r.error), static_cast<int>(*t.error))
        << t.arg << ": " << r.detail;
  } else {
    ASSERT_TRUE(r.ok()) << t.arg << ": " << r.detail;
    EXPECT_EQ(r.address, t.address);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Grammar, PathTable,
    ::testing::Values(
        PathCase{"FROM:<a@b.example>", true, std::nullopt, "a@b.example"},
        PathCase{"from:<a@b.example>", true, std::nullopt, "a@b.example"},
        PathCase{"FROM: <a@b.example>", true, ReplyId::kSyntax, ""},
        PathCase{"FROM:<>", true, std::nullopt, ""},
        PathCase{"FROM:<@relay.example,@r2.example:a@b.example>", true,
                 std::nullopt, "a@b.example"},
        PathCase{"FROM:<\"john doe\"@b.example>", true, std::nullopt,
                 "\"john doe\"@b.example"},
        PathCase{"FROM:<a@[192.0.2.1]>", true, std::nullopt, "a@[192.0.2.1]"},
        PathCase{"FROM:<a@[IPv6:2001:db8::1]>", true, std::nullopt,
                 "a@[IPv6:2001:db8::1]"},
        PathCase{"FROM:a@b.example", true, ReplyId::kSyntax, ""},
        PathCase{"FROM <a@b.example>", true, ReplyId::kSyntax, ""},
        PathCase{"TO:<a@b.example>", true, ReplyId::kSyntax, ""},
        PathCase{"FROM:<a@b.example", true, ReplyId::kSyntax, ""},
        PathCase{"FROM:<a..b@c.example>", true, ReplyId::kBadSenderAddress, ""},
        PathCase{"FROM:<a@-b.example>", true, ReplyId::kBadSenderAddress, ""},
        PathCase{"FROM:<a@b..example>", true, ReplyId::kBadSenderAddress, ""},
        PathCase{"FROM:<a@[300.1.1.1]>", true, ReplyId::kBadSenderAddress, ""},
        PathCase{"FROM:<a b@c.example>", true, ReplyId::kSyntax, ""},
        PathCase{"FROM:<a@b.example>junk", true, ReplyId::kSyntax, ""},
        PathCase{"FROM:<a@b.example> BOGUS=1", true, ReplyId::kSyntaxParam, ""},
        PathCase{"FROM:<a@b.example> SIZE=abc", true, ReplyId::kSyntax, ""},
        PathCase{"FROM:<a@b.example> SIZE=1 SIZE=2", true, ReplyId::kSyntax,
                 ""},
        PathCase{"FROM:<a@b.example> BODY=BINARYMIME", true,
                 ReplyId::kSyntaxParam, ""},
        PathCase{"FROM:<a@b.example> RET=MAYBE", true, ReplyId::kSyntax, ""},
        PathCase{"FROM:<a@b.example> ENVID=bad+Z1", true, ReplyId::kSyntax, ""},
        PathCase{"FROM:<\xC3\xA4@b.example>", true, ReplyId::kNeedSmtpUtf8, ""},
        PathCase{"FROM:<\xC3\xA4@b.example> SMTPUTF8", true, std::nullopt,
                 "\xC3\xA4@b.example"},
        PathCase{"TO:<postmaster>", false, std::nullopt, "postmaster"},
        PathCase{"TO:<PostMaster>", false, std::nullopt, "PostMaster"},
        PathCase{"TO:<root>", false, ReplyId::kBadRecipientAddress, ""},
        PathCase{"TO:<>", false, ReplyId::kBadRecipientAddress, ""},
        PathCase{"TO:<a@b.example> NOTIFY=NEVER,SUCCESS", false,
                 ReplyId::kSyntax, ""},
        PathCase{"TO:<a@b.example> NOTIFY=MAYBE", false, ReplyId::kSyntax, ""},
        PathCase{"TO:<a@b.example> ORCPT=rfc822", false, ReplyId::kSyntax, ""},
        PathCase{"TO:<a@b.example> SIZE=1", false, ReplyId::kSyntaxParam, ""}));

TEST(ParseMailFrom, KeepsEsmtpParameters) {
  PathResult r = ParseMailFrom(
      "FROM:<a@b.example> SIZE=1234 BODY=8bitmime RET=hdrs ENVID=QQ+2B1", {});
  ASSERT_TRUE(r.ok()) << r.detail;
  EXPECT_EQ(r.mail.size, 1234u);
  EXPECT_EQ(r.mail.body, "8BITMIME");
  EXPECT_EQ(r.mail.ret, "HDRS");
  EXPECT_EQ(r.mail.envid, "QQ+1");
}

TEST(ParseMailFrom, ParametersNeedEhlo) {
  PathOptions o;
  o.ext.esmtp = false;
  PathResult r = ParseMailFrom("FROM:<a@b.example> SIZE=1", o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(*r.error, ReplyId::kSyntaxParam);
}

TEST(ParseMailFrom, DisabledExtensionsRefuseTheirParameters) {
  PathOptions o;
  o.ext.dsn = false;
  PathResult r = ParseMailFrom("FROM:<a@b.example> RET=FULL", o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(*r.error, ReplyId::kSyntaxParam);
}

TEST(ParseRcptTo, KeepsDsnParameters) {
  PathResult r = ParseRcptTo(
      "TO:<a@b.example> NOTIFY=failure,delay ORCPT=rfc822;a+40b.example", {});
  ASSERT_TRUE(r.ok()) << r.detail;
  EXPECT_EQ(r.rcpt.notify, "FAILURE,DELAY");
  EXPECT_EQ(r.rcpt.orcpt, "rfc822;a@b.example");
}

TEST(ParseRcptTo, LocalSubmissionMayOmitTheDomain) {
  PathOptions o;
  o.require_domain = false;
  PathResult r = ParseRcptTo("TO:<root>", o);
  ASSERT_TRUE(r.ok()) << r.detail;
  EXPECT_EQ(r.address, "root");
}

TEST(ParseRcptTo, LimitsLengths) {
  std::string local(65, 'a');
  EXPECT_FALSE(ParseRcptTo("TO:<" + local + "@b.example>", {}).ok());
  std::string label(64, 'a');
  EXPECT_FALSE(ParseRcptTo("TO:<a@" + label + ".example>", {}).ok());
}

TEST(AddressDomain, FindsTheDomain) {
  EXPECT_EQ(AddressDomain("a@B.Example."), "b.example");
  EXPECT_EQ(AddressDomain("\"x@y\"@c.example"), "c.example");
  EXPECT_EQ(AddressDomain("postmaster"), "");
  EXPECT_EQ(AddressDomain("a@[127.0.0.1]"), "[127.0.0.1]");
}

TEST(Reply, FormatsMultiLineAndEnhancedCodes) {
  Reply r = MakeReply(ReplyId::kRelayDenied);
  EXPECT_EQ(r.Format(true), "554 5.7.1 Relaying denied\r\n");
  EXPECT_EQ(r.Format(false), "554 Relaying denied\r\n");
  r.lines = {"one", "two"};
  EXPECT_EQ(r.Format(true), "554-5.7.1 one\r\n554 5.7.1 two\r\n");
}

TEST(Reply, SpoolErrorsMapToTemporaryCodes) {
  EXPECT_EQ(ReplyForSpoolError(absl::ResourceExhaustedError("full")).Summary(),
            "452 4.3.1 Insufficient system storage, try again later");
  EXPECT_EQ(ReplyForSpoolError(absl::InternalError("x")).code, 451);
}

TEST(LineReader, SplitsAndBoundsCommands) {
  LineReader r;
  r.Append("HELO a\r\nNOOP\nQU");
  LineReader::Line l;
  ASSERT_TRUE(r.Next(LineReader::Mode::kCommand, &l));
  EXPECT_EQ(l.text, "HELO a");
  EXPECT_TRUE(l.crlf);
  ASSERT_TRUE(r.Next(LineReader::Mode::kCommand, &l));
  EXPECT_EQ(l.text, "NOOP");
  EXPECT_FALSE(l.crlf);
  EXPECT_FALSE(r.Next(LineReader::Mode::kCommand, &l));
  r.Append("IT\r\n");
  ASSERT_TRUE(r.Next(LineReader::Mode::kCommand, &l));
  EXPECT_EQ(l.text, "QUIT");
}

TEST(LineReader, ExactlyTheLimitIsAccepted) {
  LineReader r;
  std::string ok(998, 'x');
  r.Append(ok + "\r\n" + ok + "x\r\n");
  LineReader::Line l;
  ASSERT_TRUE(r.Next(LineReader::Mode::kCommand, &l));
  EXPECT_FALSE(l.too_long);
  EXPECT_EQ(l.text.size(), 998u);
  ASSERT_TRUE(r.Next(LineReader::Mode::kCommand, &l));
  EXPECT_TRUE(l.too_long);
}

TEST(LineReader, OverlongCommandIsSwallowedWithBoundedMemory) {
  LineReader r;
  LineReader::Line l;
  for (int i = 0; i < 100; ++i) {
    r.Append(std::string(4096, 'x'));
    EXPECT_FALSE(r.Next(LineReader::Mode::kCommand, &l));
    EXPECT_LE(r.buffered(), 8192u);
  }
  r.Append("tail\r\nNOOP\r\n");
  ASSERT_TRUE(r.Next(LineReader::Mode::kCommand, &l));
  EXPECT_TRUE(l.too_long);
  ASSERT_TRUE(r.Next(LineReader::Mode::kCommand, &l));
  EXPECT_EQ(l.text, "NOOP");
}

TEST(LineReader, LongDataLinesComeInFragments) {
  LineReader r(1000, 100);
  r.Append(std::string(250, 'y'));  // no line end yet
  LineReader::Line l;
  size_t total = 0;
  int fragments = 0;
  while (r.Next(LineReader::Mode::kData, &l)) {
    total += l.text.size();
    if (!l.complete) ++fragments;
    if (l.complete) break;
  }
  r.Append("\r\n");
  while (r.Next(LineReader::Mode::kData, &l)) {
    total += l.text.size();
    if (l.complete) break;
  }
  EXPECT_EQ(total, 250u);
  EXPECT_EQ(fragments, 2);
  EXPECT_TRUE(l.crlf);
}

}  // namespace
}  // namespace zm::smtp

namespace zm::smtp {
namespace {

TEST(Sasl, Base64) {
  std::string out;
  EXPECT_TRUE(Base64Decode("AGFsaWNlAHNlY3JldA==", &out));
  EXPECT_EQ(out, std::string("\0alice\0secret", 13));
  EXPECT_TRUE(Base64Decode("=", &out));  // RFC 4954: empty response
  EXPECT_EQ(out, "");
  for (const char* bad :
       {"abc", "ab=c", "a===", "ab\r\n", "!!!!", "QQ==QQ=="}) {
    EXPECT_FALSE(Base64Decode(bad, &out)) << bad;
  }
  for (std::string s : {"", "a", "ab", "abc", "abcd", "\xff\x00\x7f"}) {
    ASSERT_TRUE(Base64Decode(Base64Encode(s), &out)) << s;
    EXPECT_EQ(out, s);
  }
  EXPECT_EQ(Base64Encode("Username:"), "VXNlcm5hbWU6");
}

TEST(Sasl, Plain) {
  PlainCredentials c;
  ASSERT_TRUE(ParsePlain(std::string("admin\0alice\0pw", 14), &c));
  EXPECT_EQ(c.authzid, "admin");
  EXPECT_EQ(c.user, "alice");
  EXPECT_EQ(c.password, "pw");
  EXPECT_FALSE(ParsePlain("alice", &c));
  EXPECT_FALSE(ParsePlain(std::string("\0\0pw", 4), &c));  // no user
  EXPECT_FALSE(ParsePlain(std::string("\0a\0b\0c", 6), &c));
}

TEST(ParseMailFrom, SloppySyntaxOnlyWhenAsked) {
  PathOptions strict;
  PathOptions sloppy;
  sloppy.sloppy = true;
  EXPECT_FALSE(ParseMailFrom("FROM: <a@b.example>", strict).ok());
  EXPECT_FALSE(ParseMailFrom("FROM:a@b.example", strict).ok());
  PathResult r = ParseMailFrom("FROM:   a@b.example SIZE=10", sloppy);
  ASSERT_TRUE(r.ok()) << r.detail;
  EXPECT_EQ(r.address, "a@b.example");
  EXPECT_EQ(*r.mail.size, 10u);
  r = ParseRcptTo("TO: <x@mx.test>", sloppy);
  ASSERT_TRUE(r.ok()) << r.detail;
  EXPECT_EQ(r.address, "x@mx.test");
  EXPECT_FALSE(ParseMailFrom("FROM: a b@c", sloppy).ok());
}

TEST(ParseMailFrom, AuthAndBy) {
  PathOptions o;
  PathResult r = ParseMailFrom("FROM:<a@b.example> AUTH=<> BY=-60;NT", o);
  ASSERT_TRUE(r.ok()) << r.detail;
  EXPECT_EQ(r.mail.auth, "<>");
  EXPECT_EQ(r.mail.by, "-60;NT");
  for (const char* bad : {"BY=60", "BY=;R", "BY=0;R", "BY=-5;R", "BY=60;Q",
                          "BY=1234567890;R", "BY=60;RX"}) {
    EXPECT_FALSE(ParseMailFrom(StrCat("FROM:<a@b.example> ", bad), o).ok())
        << bad;
  }
  o.ext.deliverby = false;
  o.ext.auth = false;
  EXPECT_EQ(*ParseMailFrom("FROM:<a@b.example> BY=60;R", o).error,
            ReplyId::kSyntaxParam);
  EXPECT_EQ(*ParseMailFrom("FROM:<a@b.example> AUTH=<>", o).error,
            ReplyId::kSyntaxParam);
}

}  // namespace
}  // namespace zm::smtp
