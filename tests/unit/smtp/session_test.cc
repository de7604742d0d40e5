// Golden transcripts through zm::smtp::Session with a fake spool driver.
#include "node/smtp/session.h"

#include <gtest/gtest.h>

#include "node/mail/envelope.h"
#include "tests/unit/smtp/session_driver.h"

namespace zm::smtp {
namespace {

using sessiontest::Config;
using sessiontest::Driver;
using sessiontest::Stored;

TEST(Session, GoldenTranscript) {
  Driver d(Config());
  EXPECT_EQ(d.greeting, "220 mx.test ESMTP zmnode\r\n");
  EXPECT_EQ(d.Feed("EHLO client.example\r\n"),
            "250-mx.test Hello client.example (unknown [192.0.2.7])\r\n"
            "250-PIPELINING\r\n"
            "250-SIZE 10000000\r\n"
            "250-8BITMIME\r\n"
            "250-CHUNKING\r\n"
            "250-DSN\r\n"
            "250-ETRN\r\n"
            "250-ENHANCEDSTATUSCODES\r\n"
            "250-DELIVERBY\r\n"
            "250-SMTPUTF8\r\n"
            "250 X-RCPTLIMIT 10000\r\n");
  EXPECT_EQ(
      d.Feed("MAIL FROM:<alice@client.example> BODY=8BITMIME ENVID=e1\r\n"),
      "250 2.1.0 Ok\r\n");
  EXPECT_EQ(d.Feed("RCPT TO:<bob@mx.test> NOTIFY=SUCCESS,FAILURE "
                   "ORCPT=rfc822;bob@mx.test\r\n"),
            "250 2.1.5 Ok\r\n");
  EXPECT_EQ(d.Feed("DATA\r\n"), "354 End data with <CR><LF>.<CR><LF>\r\n");
  EXPECT_EQ(d.Feed("Subject: t\r\n\r\n..leading dot\r\nbody\r\n.\r\n"),
            "250 2.0.0 Ok: queued as QID1\r\n");
  EXPECT_EQ(d.Feed("QUIT\r\n"), "221 2.0.0 Bye\r\n");
  EXPECT_TRUE(d.closed);
  ASSERT_EQ(d.stored.size(), 1u);
  const Stored& m = d.stored[0];
  EXPECT_EQ(m.env.sender, "alice@client.example");
  ASSERT_EQ(m.env.recipients.size(), 1u);
  EXPECT_EQ(m.env.recipients[0].address, "bob@mx.test");
  EXPECT_EQ(m.env.recipients[0].notify, "SUCCESS,FAILURE");
  EXPECT_EQ(m.env.recipients[0].orcpt, "rfc822;bob@mx.test");
  EXPECT_EQ(m.env.envid, "e1");
  EXPECT_EQ(m.env.bodytype, "8BITMIME");
  EXPECT_EQ(m.env.protocol, "ESMTP");
  EXPECT_EQ(m.env.client_addr, "192.0.2.7");
  EXPECT_EQ(m.env.client_port, "40000");
  EXPECT_EQ(m.env.helo, "client.example");
  // Received: on top, CRLF -> LF, dot-unstuffed.
  EXPECT_EQ(m.data.rfind("Received: from client.example (unknown [192.0.2.7])\n"
                         "\tby mx.test (zmnode) with ESMTP id QID1\n"
                         "\tfor <bob@mx.test>; ",
                         0),
            0u)
      << m.data;
  EXPECT_NE(m.data.find("\nSubject: t\n\n.leading dot\nbody\n"),
            std::string::npos)
      << m.data;
  EXPECT_EQ(m.data.find('\r'), std::string::npos);
  EXPECT_EQ(d.session().Stats(),
            "ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5");
}

TEST(Session, PipelinedCommandsAreAnsweredInOneWrite) {
  Driver d(Config());
  d.Feed("EHLO c\r\n");
  int writes = 0;
  std::string out = d.Feed(
      "MAIL FROM:<a@c.example>\r\nRCPT TO:<x@mx.test>\r\nRCPT "
      "TO:<y@mx.test>\r\nDATA\r\n",
      false, &writes);
  EXPECT_EQ(out,
            "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"
            "354 End data with <CR><LF>.<CR><LF>\r\n");
  EXPECT_EQ(writes, 1);
  out = d.Feed(
      "x\r\n.\r\nMAIL FROM:<>\r\nRCPT "
      "TO:<postmaster@mx.test>\r\nRSET\r\nQUIT\r\n",
      false, &writes);
  EXPECT_EQ(out,
            "250 2.0.0 Ok: queued as QID1\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
            "250 2.0.0 Ok\r\n221 2.0.0 Bye\r\n");
}

struct SeqCase {
  const char* input;
  const char* reply;
};

class SequenceTable : public ::testing::TestWithParam<SeqCase> {};

TEST_P(SequenceTable, Replies) {
  Driver d(Config());
  std::string out = d.Feed(GetParam().input);
  // The last reply line is the one under test.
  std::string last =
      out.substr(out.rfind("\r\n", out.size() - 3) == std::string::npos
                     ? 0
                     : out.rfind("\r\n", out.size() - 3) + 2);
  EXPECT_EQ(last.substr(0, std::string(GetParam().reply).size()),
            GetParam().reply)
      << GetParam().input << " -> " << out;
}

INSTANTIATE_TEST_SUITE_P(
    Errors, SequenceTable,
    ::testing::Values(
        SeqCase{"MAIL FROM:<a@b.example>\r\n", "503 5.5.1"},
        SeqCase{"HELO c\r\nRCPT TO:<x@mx.test>\r\n", "503 5.5.1"},
        SeqCase{"HELO c\r\nDATA\r\n", "503 5.5.1"},
        SeqCase{"HELO c\r\nMAIL FROM:<a@b.example>\r\nDATA\r\n", "503 5.5.1"},
        SeqCase{
            "HELO c\r\nMAIL FROM:<a@b.example>\r\nMAIL FROM:<a@b.example>\r\n",
            "503 5.5.1"},
        SeqCase{"HELO\r\n", "501 5.5.4"},
        SeqCase{"HELO c\r\nMAIL FROM:<a@b.example> SIZE=1\r\n", "555 5.5.4"},
        SeqCase{"EHLO c\r\nMAIL FROM:<a@b.example> SIZE=99999999\r\n",
                "552 5.3.4"},
        SeqCase{"EHLO c\r\nMAIL FROM a@b.example\r\n", "501 5.5.4"},
        SeqCase{"EHLO c\r\nMAIL FROM:<a@b.example> FOO=BAR\r\n", "555 5.5.4"},
        SeqCase{"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT "
                "TO:<x@elsewhere.example>\r\n",
                "554 5.7.1"},
        SeqCase{
            "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@[192.0.2.1]>\r\n",
            "250 2.1.5"},
        SeqCase{
            "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@[192.0.2.9]>\r\n",
            "554 5.7.1"},
        SeqCase{"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<Postmaster>\r\n",
                "250 2.1.5"},
        SeqCase{"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT "
                "TO:<\xC3\xA4@mx.test>\r\n",
                "553 5.6.7"},
        SeqCase{"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT "
                "TO:<x@mx.test>\r\nDATA x\r\n",
                "501 5.5.4"},
        SeqCase{"BOGUS\r\n", "500 5.5.1"}, SeqCase{"\r\n", "500 5.5.2"},
        SeqCase{"VRFY root\r\n", "502 5.5.1"},
        SeqCase{"STARTTLS\r\n", "502 5.5.1"}, SeqCase{"NOOP\r\n", "250 2.0.0"},
        SeqCase{"RSET\r\n", "250 2.0.0"}, SeqCase{"HELP\r\n", "214 2.0.0"}));

TEST(Session, LineTooLong) {
  Driver d(Config());
  std::string out = d.Feed("NOOP " + std::string(1200, 'x') + "\r\nNOOP\r\n");
  EXPECT_EQ(out, "500 5.5.2 Line too long\r\n250 2.0.0 Ok\r\n");
}

TEST(Session, RecipientLimit) {
  SessionConfig c = Config();
  c.rcpt_limit = 2;
  Driver d(c);
  std::string out = d.Feed(
      "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<1@mx.test>\r\n"
      "RCPT TO:<2@mx.test>\r\nRCPT TO:<3@mx.test>\r\n");
  EXPECT_NE(out.find("452 4.5.3 Too many recipients\r\n"), std::string::npos)
      << out;
}

TEST(Session, TrustedClientMayRelay) {
  ClientInfo ci = Driver::Client();
  ci.trusted = true;
  Driver d(Config(), ci);
  std::string out = d.Feed(
      "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@far.example>\r\n");
  EXPECT_NE(out.find("250 2.1.5"), std::string::npos) << out;
}

TEST(Session, MessageTooBigIsRefusedAtTheDot) {
  SessionConfig c = Config();
  c.max_message_size = 100;
  Driver d(c);
  d.Feed(
      "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@mx.test>\r\nDATA\r\n");
  std::string body;
  for (int i = 0; i < 10; ++i) body += "0123456789012345678901234567890\r\n";
  EXPECT_EQ(d.Feed(body + ".\r\n"),
            "552 5.3.4 Message size exceeds fixed limit\r\n");
  EXPECT_TRUE(d.stored.empty());
  EXPECT_EQ(d.aborted, 1);
  // The session goes on.
  EXPECT_EQ(d.Feed("MAIL FROM:<a@b.example>\r\n"), "250 2.1.0 Ok\r\n");
}

TEST(Session, HeaderTooBig) {
  SessionConfig c = Config();
  c.max_header_size = 50;
  Driver d(c);
  d.Feed(
      "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@mx.test>\r\nDATA\r\n");
  EXPECT_EQ(d.Feed("X-A: " + std::string(60, 'a') + "\r\n\r\nbody\r\n.\r\n"),
            "552 5.3.4 Message header size exceeds limit\r\n");
  EXPECT_TRUE(d.stored.empty());
}

TEST(Session, SpoolFailuresAreTemporary) {
  Driver d(Config());
  d.begin_error = absl::ResourceExhaustedError("disk full");
  EXPECT_EQ(
      d.Feed("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT "
             "TO:<x@mx.test>\r\nDATA\r\n")
          .substr(0),
      std::string(
          "250-mx.test Hello c (unknown [192.0.2.7])\r\n250-PIPELINING\r\n"
          "250-SIZE 10000000\r\n250-8BITMIME\r\n250-CHUNKING\r\n250-DSN\r\n"
          "250-ETRN\r\n250-ENHANCEDSTATUSCODES\r\n250-DELIVERBY\r\n"
          "250-SMTPUTF8\r\n250 X-RCPTLIMIT 10000\r\n"
          "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
          "452 4.3.1 Insufficient system storage, try again later\r\n"));
  d.begin_error = absl::OkStatus();
  d.commit_error = absl::InternalError("fsync failed");
  d.Feed("MAIL FROM:<a@b.example>\r\nRCPT TO:<x@mx.test>\r\nDATA\r\n");
  EXPECT_EQ(d.Feed("x\r\n.\r\n"),
            "451 4.3.0 Local error in processing, try again later\r\n");
  EXPECT_TRUE(d.stored.empty());
}

TEST(Session, EofInDataAcknowledgesNothing) {
  Driver d(Config());
  d.Feed(
      "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@mx.test>\r\nDATA\r\n");
  d.Feed("Subject: half\r\n", /*eof=*/true);
  EXPECT_TRUE(d.closed);
  EXPECT_TRUE(d.stored.empty());
  EXPECT_EQ(d.aborted, 1);
}

TEST(Session, BareLfDotDoesNotEndDataOnTheNetwork) {
  Driver d(Config());
  d.Feed(
      "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@mx.test>\r\nDATA\r\n");
  // The 2023 smuggling family: <LF>.<LF>, <CR>.<CR>, <LF>.<CRLF>.
  EXPECT_EQ(d.Feed("a\r\n.\nMAIL FROM:<evil@x>\r\nRCPT TO:<x@mx.test>\r\n"
                   "DATA\r\nsmuggled\r\n\r.\rX\n.\r\nZ\r\n"),
            "");
  // Only CRLF.CRLF ends the data, and the message with bare newlines is
  // refused as a whole: never a second message.
  EXPECT_EQ(d.Feed(".\r\n"),
            "550 5.6.0 Message contains bare CR or LF (RFC 5321 section "
            "2.3.8)\r\n");
  EXPECT_TRUE(d.stored.empty());
  EXPECT_EQ(d.aborted, 1);
  EXPECT_EQ(d.Feed("MAIL FROM:<a@b.example>\r\n"), "250 2.1.0 Ok\r\n");
}

TEST(Session, BareNewlinesCanBeNormalised) {
  SessionConfig c = Config();
  c.bare_newline_normalise = true;
  Driver d(c);
  d.Feed(
      "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@mx.test>\r\nDATA\r\n");
  EXPECT_EQ(d.Feed("a\r\n.\nMAIL FROM:<evil@x>\r\nb\rc\r\n.\r\n"),
            "250 2.0.0 Ok: queued as QID1\r\n");
  ASSERT_EQ(d.stored.size(), 1u);
  EXPECT_NE(d.stored[0].data.find("\na\n\nMAIL FROM:<evil@x>\nbc\n"),
            std::string::npos)
      << d.stored[0].data;
}

TEST(Session, IdentAnswerGoesIntoTheEnvelope) {
  ClientInfo ci = Driver::Client();
  ci.ident = "alice smith";
  Driver d(Config(), ci);
  std::string out = d.Feed(
      "EHLO c.example\r\nMAIL FROM:<a@c.example>\r\nRCPT TO:<b@mx.test>\r\n"
      "DATA\r\nhi\r\n.\r\n");
  ASSERT_EQ(d.stored.size(), 1u) << out;
  EXPECT_EQ(d.stored[0].env.ident, "alice smith");
  // ZMailer's envelope keyword, and back.
  mail::Envelope env = d.stored[0].env;
  env.queue_id = "0GC4H8WY3TQ2K7PX-mx1";  // Spool::Begin's part
  std::string text = mail::SerializeEnvelope(env, nullptr);
  EXPECT_NE(text.find("\nidentinfo alice+20smith\n"), std::string::npos)
      << text;
  auto parsed = mail::ParseMessageFile(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->envelope.ident, "alice smith");
  // Without an ident answer there is no such line.
  Driver plain(Config());
  plain.Feed(
      "EHLO c.example\r\nMAIL FROM:<a@c.example>\r\n"
      "RCPT TO:<b@mx.test>\r\nDATA\r\nhi\r\n.\r\n");
  ASSERT_EQ(plain.stored.size(), 1u);
  EXPECT_EQ(
      mail::SerializeEnvelope(plain.stored[0].env, nullptr).find("identinfo"),
      std::string::npos);
}

TEST(Session, LocalSessionsAcceptBareLf) {
  SessionConfig c = Config();
  c.strict_dot = false;
  c.require_domain = false;
  ClientInfo ci;
  ci.trusted = true;
  ci.local_user = "alice";
  Driver d(c, ci);
  std::string out =
      d.Feed("HELO me\nMAIL FROM:<alice>\nRCPT TO:<root>\nDATA\nhi\n.\nQUIT\n");
  EXPECT_NE(out.find("250 2.0.0 Ok: queued as QID1"), std::string::npos) << out;
  ASSERT_EQ(d.stored.size(), 1u);
  EXPECT_EQ(d.stored[0].env.protocol, "SMTP");
  EXPECT_EQ(d.stored[0].env.local_user, "alice");
  EXPECT_EQ(d.stored[0].data.rfind(
                "Received: by mx.test (zmnode, from user alice)", 0),
            0u);
}

TEST(Session, TooManyUnknownCommandsCloses) {
  SessionConfig c = Config();
  c.max_unknown_commands = 3;
  Driver d(c);
  std::string out = d.Feed("A\r\nB\r\nC\r\nNOOP\r\n");
  EXPECT_NE(out.find("421 4.7.0"), std::string::npos) << out;
  EXPECT_EQ(out.find("250"), std::string::npos);
  EXPECT_TRUE(d.closed);
}

TEST(Session, DisablersHideExtensions) {
  SessionConfig c = Config();
  c.pipelining = false;
  c.dsn = false;
  c.enhanced_status_codes = false;
  Driver d(c);
  std::string out = d.Feed("EHLO c\r\nMAIL FROM:<a@b.example> RET=FULL\r\n");
  EXPECT_EQ(out.find("PIPELINING"), std::string::npos);
  EXPECT_EQ(out.find("DSN"), std::string::npos);
  EXPECT_NE(out.find("\r\n555 Unsupported MAIL parameter RET\r\n"),
            std::string::npos)
      << out;
}

TEST(Session, StopClosesAnIdleSessionButFinishesATransaction) {
  Driver d(Config());
  d.Feed("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@mx.test>\r\n");
  d.session().RequestStop();
  EXPECT_EQ(d.Feed("DATA\r\n"), "354 End data with <CR><LF>.<CR><LF>\r\n");
  EXPECT_EQ(d.Feed("x\r\n.\r\n"),
            "250 2.0.0 Ok: queued as QID1\r\n"
            "421 4.3.2 Service shutting down, closing connection\r\n");
  EXPECT_TRUE(d.closed);
}

}  // namespace
}  // namespace zm::smtp
