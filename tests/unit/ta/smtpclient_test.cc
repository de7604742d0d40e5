// zm_smtpclient pieces, the smtp agent's configuration and sm.conf.
#include "node/ta/smtpclient/smtpclient.h"

#include <gtest/gtest.h>

#include "node/common/strings.h"
#include "node/ta/sm/sm.h"
#include "node/ta/smtp/smtp.h"

namespace zm {
namespace {

using smtpclient::ReplyParser;

TEST(ReplyParser, MultiLineWithEnhancedCode) {
  ReplyParser p;
  ASSERT_TRUE(p.Feed("550-5.1.1 first line").ok());
  EXPECT_FALSE(p.Done());
  ASSERT_TRUE(p.Feed("550 5.1.1 second line").ok());
  ASSERT_TRUE(p.Done());
  smtpclient::Reply r = p.Take();
  EXPECT_EQ(r.code, 550);
  EXPECT_EQ(r.enhanced, "5.1.1");
  EXPECT_EQ(r.Text(), "550 5.1.1 first line second line");
}

TEST(ReplyParser, BareCodeAndNoEnhanced) {
  ReplyParser p;
  ASSERT_TRUE(p.Feed("250").ok());
  ASSERT_TRUE(p.Done());
  EXPECT_EQ(p.Take().Text(), "250");
  ASSERT_TRUE(p.Feed("451 try later").ok());
  smtpclient::Reply r = p.Take();
  EXPECT_EQ(r.enhanced, "");
  EXPECT_EQ(r.klass(), 4);
}

TEST(ReplyParser, RejectsGarbageAndMixedCodes) {
  EXPECT_FALSE(ReplyParser().Feed("hello there").ok());
  EXPECT_FALSE(ReplyParser().Feed("25").ok());
  EXPECT_FALSE(ReplyParser().Feed("250xok").ok());
  EXPECT_FALSE(ReplyParser().Feed("999 what").ok());
  ReplyParser p;
  ASSERT_TRUE(p.Feed("250-a").ok());
  EXPECT_FALSE(p.Feed("251 b").ok());
}

TEST(ReplyParser, BoundsTheLineCount) {
  ReplyParser p;
  absl::Status s;
  for (size_t i = 0; i <= smtpclient::kMaxReplyLines && s.ok(); ++i) {
    s = p.Feed("250-more");
  }
  EXPECT_TRUE(absl::IsOutOfRange(s));
}

TEST(ParseEhlo, Keywords) {
  ReplyParser p;
  for (const char* l : {"250-mx.example Hello", "250-PIPELINING",
                        "250-SIZE 1000", "250-8BITMIME", "250-DSN",
                        "250-CHUNKING", "250-SMTPUTF8", "250 STARTTLS"}) {
    ASSERT_TRUE(p.Feed(l).ok());
  }
  auto c = smtpclient::ParseEhlo(p.Take());
  EXPECT_TRUE(c.pipelining && c.size && c.eightbitmime && c.dsn && c.chunking &&
              c.smtputf8 && c.starttls);
  EXPECT_EQ(c.max_size, 1000u);
}

TEST(ParseEhlo, RcptLimit) {
  ReplyParser p;
  for (const char* l : {"250-mx.example", "250-X-RCPTLIMIT 100", "250 DSN"}) {
    ASSERT_TRUE(p.Feed(l).ok());
  }
  EXPECT_EQ(smtpclient::ParseEhlo(p.Take()).rcpt_limit, 100u);
}

TEST(Wire, DotStuffingAndCrlf) {
  EXPECT_EQ(smtpclient::DataWire("a\n.b\n..c\nd"),
            "a\r\n..b\r\n...c\r\nd\r\n.\r\n");
  EXPECT_EQ(smtpclient::DataWire(".\n"), "..\r\n.\r\n");
  EXPECT_EQ(smtpclient::BdatWire("a\n.b"), "a\r\n.b\r\n");
}

TEST(QuotedPrintable, EncodesAndWraps) {
  EXPECT_EQ(smtpclient::QuotedPrintable("caf\xc3\xa9 a=b \n"),
            "caf=C3=A9 a=3Db=20\n");
  std::string longline(100, 'x');
  std::string qp = smtpclient::QuotedPrintable(longline);
  EXPECT_NE(qp.find("=\n"), std::string::npos);
  for (std::string_view l : Split(qp, '\n')) EXPECT_LE(l.size(), 76u);
}

TEST(ConvertTo7Bit, SinglePart) {
  std::string m =
      "Subject: x\nContent-Transfer-Encoding: 8bit\n\ncaf\xc3\xa9\n";
  std::string out = smtpclient::ConvertTo7Bit(m);
  EXPECT_FALSE(smtpclient::Has8Bit(out));
  EXPECT_NE(out.find("MIME-Version: 1.0\n"), std::string::npos);
  EXPECT_NE(
      out.find("Content-Transfer-Encoding: quoted-printable\n\ncaf=C3=A9"),
      std::string::npos);
  EXPECT_EQ(out.find("8bit"), std::string::npos);
}

TEST(ConvertTo7Bit, MultipartOnlyTheEightBitPart) {
  std::string m =
      "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"XX\"\n\n"
      "preamble\n--XX\nContent-Type: text/plain\n\nplain ascii\n"
      "--XX\nContent-Type: text/plain; charset=utf-8\n\n\xc3\xa9t\xc3\xa9\n"
      "--XX--\nepilogue\n";
  std::string out = smtpclient::ConvertTo7Bit(m);
  EXPECT_FALSE(smtpclient::Has8Bit(out));
  EXPECT_NE(out.find("\n\nplain ascii\n--XX\n"), std::string::npos);
  EXPECT_NE(out.find("quoted-printable\n\n=C3=A9t=C3=A9\n--XX--\nepilogue"),
            std::string::npos);
}

TEST(ConvertTo7Bit, AsciiUntouched) {
  std::string m = "Subject: x\n\nhello\n";
  EXPECT_EQ(smtpclient::ConvertTo7Bit(m), m);
}

TEST(Destination, Forms) {
  auto d = smtp::ParseDestination("Example.NET.", 25);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->name, "example.net");
  EXPECT_FALSE(d->literal || d->no_mx);
  d = smtp::ParseDestination("[192.0.2.1]:2525", 25);
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->literal);
  EXPECT_EQ(d->name, "192.0.2.1");
  EXPECT_EQ(d->port, 2525);
  d = smtp::ParseDestination("[IPv6:::1]", 25);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->name, "::1");
  d = smtp::ParseDestination("relay.example:587", 25);
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->no_mx);
  EXPECT_EQ(d->port, 587);
  d = smtp::ParseDestination("/run/lmtp.sock", 24);
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->unix_socket);
  EXPECT_FALSE(smtp::ParseDestination("[nope]", 25).ok());
  EXPECT_FALSE(smtp::ParseDestination("host:99999", 25).ok());
  EXPECT_FALSE(smtp::ParseDestination("", 25).ok());
}

TEST(TlsPolicies, MatchingOrder) {
  auto p = smtp::TlsPolicies::Parse(
      "# comment\n*  encrypt\n.example.net verify\n"
      "mx.example.net none\n[127.0.0.1] verify ca=/x/ca.pem name=localhost\n",
      "smtp-tls.conf");
  ASSERT_TRUE(p.ok()) << p.status();
  using L = smtp::TlsPolicy::Level;
  EXPECT_EQ(p->For("mx.example.net").level, L::kNone);
  EXPECT_EQ(p->For("a.b.example.net").level, L::kVerify);
  EXPECT_EQ(p->For("example.net").level, L::kEncrypt);
  EXPECT_EQ(p->For("[127.0.0.1]").ca_file, "/x/ca.pem");
  EXPECT_EQ(p->For("[127.0.0.1]").verify_name, "localhost");
  auto none = smtp::TlsPolicies::Parse("", "f");
  EXPECT_EQ(none->For("x").level, L::kMay);
}

TEST(TlsPolicies, ErrorsNameTheLine) {
  auto p = smtp::TlsPolicies::Parse("* may\nx.example sometimes\n", "t.conf");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(std::string(p.status().message()).find("t.conf:2: "),
            std::string::npos);
  EXPECT_FALSE(smtp::TlsPolicies::Parse("* may ca=/x\n", "t").ok());
}

TEST(SmConf, ParseAndExpand) {
  auto m = sm::ParseSmConf(
      "# c\nprocm fn /usr/bin/procmail procmail -a $h -d $u\n"
      "multi mf /bin/echo echo $u x$$y\n",
      "sm.conf");
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->size(), 2u);
  EXPECT_EQ(sm::ExpandArgv((*m)[0], {"bob"}, "example.net", "alice@x"),
            (std::vector<std::string>{"procmail", "-f", "alice@x", "-a",
                                      "example.net", "-d", "bob"}));
  EXPECT_EQ(sm::ExpandArgv((*m)[1], {"a", "b"}, "h", ""),
            (std::vector<std::string>{"echo", "-f", "", "a", "b", "x$y"}));
  EXPECT_FALSE(sm::ParseSmConf("x q /bin/true true\n", "s").ok());
  EXPECT_FALSE(sm::ParseSmConf("x - bin/true true\n", "s").ok());
  EXPECT_FALSE(sm::ParseSmConf("x - /bin/true\n", "s").ok());
}

TEST(SmRun, ExitCodesOutputAndTimeout) {
  auto r = sm::RunProgram("/bin/sh", {"sh", "-c", "cat >/dev/null; echo hi"},
                          std::string(200000, 'x'), 30);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->code, 0);
  EXPECT_EQ(r->output, "hi\n");
  r = sm::RunProgram("/bin/sh", {"sh", "-c", "echo no >&2; exit 75"}, "", 30);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->code, 75);
  EXPECT_EQ(r->output, "no\n");
  r = sm::RunProgram("/bin/sh", {"sh", "-c", "yes"}, "", 1);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->timed_out);
  EXPECT_LE(r->output.size(), 2000u);
  r = sm::RunProgram("/nonexistent", {"x"}, "", 30);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->code, 71);
}

}  // namespace
}  // namespace zm
