// The ESMTP commands and extensions through zm::smtp::Session: checks,
// STARTTLS, AUTH, BDAT, ETRN, VRFY/EXPN, style flags, tarpit, bad input.
#include <gtest/gtest.h>

#include "node/common/strings.h"
#include "node/smtp/sasl.h"
#include "node/smtp/session.h"
#include "tests/unit/smtp/session_driver.h"

namespace zm::smtp {
namespace {

using sessiontest::Config;
using sessiontest::Driver;

constexpr const char* kTransaction =
    "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@mx.test>\r\n";

bool Has(const std::string& out, std::string_view what) {
  return out.find(what) != std::string::npos;
}

Reply R(int code, const char* enhanced, const char* text) {
  Reply r;
  r.code = code;
  r.enhanced = enhanced;
  r.lines.push_back(text);
  return r;
}

// --- Checks -----------------------------------------------------------

TEST(Checks, AskedInProtocolOrder) {
  Driver d(Config());
  d.Feed(std::string(kTransaction) + "DATA\r\nhi\r\n.\r\nQUIT\r\n");
  std::vector<CheckKind> kinds;
  for (const Check& c : d.asked) kinds.push_back(c.kind);
  EXPECT_EQ(kinds,
            (std::vector<CheckKind>{CheckKind::kConnect, CheckKind::kHelo,
                                    CheckKind::kMailFrom, CheckKind::kRcptTo,
                                    CheckKind::kData, CheckKind::kMessage}));
  EXPECT_EQ(d.asked[1].arg, "c");
  EXPECT_EQ(d.asked[2].arg, "a@b.example");
  EXPECT_EQ(d.asked[3].arg, "x@mx.test");
  EXPECT_EQ(d.asked[5].queue_id, "QID1");
  ASSERT_EQ(d.stored.size(), 1u);
}

TEST(Checks, ConnectRefusedServesOnlyQuit) {
  // The Driver answers kConnect in its constructor; drive by hand.
  SessionConfig config = Config();
  Session s(config, Driver::Client());
  ASSERT_EQ(s.Step(), Action::kCheck);
  EXPECT_EQ(s.pending_check().kind, CheckKind::kConnect);
  EXPECT_EQ(s.pending_check().arg, "192.0.2.7");
  s.CheckDone(Verdict::Reject(R(554, "5.7.1", "No mail from your network")));
  s.Input("EHLO c\r\nQUIT\r\n");
  EXPECT_EQ(s.Step(), Action::kClose);
  EXPECT_EQ(s.TakeOutput(),
            "554 5.7.1 No mail from your network\r\n"
            "503 5.5.1 Service refused; only QUIT allowed\r\n"
            "221 2.0.0 Bye\r\n");
}

TEST(Checks, ConnectRejectWithCloseAndCustomGreeting) {
  SessionConfig config = Config();
  Session s(config, Driver::Client());
  ASSERT_EQ(s.Step(), Action::kCheck);
  s.CheckDone(Verdict::Reject(R(421, "4.7.0", "Too busy"), true));
  EXPECT_EQ(s.Step(), Action::kClose);
  EXPECT_EQ(s.TakeOutput(), "421 4.7.0 Too busy\r\n");

  Session ok(config, Driver::Client());
  ok.SetGreeting("mx.test ESMTP at your service");
  ASSERT_EQ(ok.Step(), Action::kCheck);
  ok.CheckDone(Verdict::Accept());
  EXPECT_EQ(ok.Step(), Action::kNeedInput);
  EXPECT_EQ(ok.TakeOutput(), "220 mx.test ESMTP at your service\r\n");
}

TEST(Checks, RelayRefusalEchoesTheAddress) {
  Driver d(Config());
  std::string out = d.Feed(
      "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@far.example>\r\n"
      "RCPT TO:<x@mx.test>\r\n");
  EXPECT_TRUE(Has(out, "554 5.7.1 <x@far.example>: Relaying denied\r\n"))
      << out;
  EXPECT_TRUE(Has(out, "250 2.1.5 Ok\r\n")) << out;
}

TEST(Checks, HeloVerdictSetsStyleFlagsAndCanRefuse) {
  Driver d(Config());
  EXPECT_EQ(d.session().style_flags(), "R");
  d.decide = [](const Session&, const Check& c) -> std::optional<Verdict> {
    if (c.kind != CheckKind::kHelo) return std::nullopt;
    if (c.arg == "bad.example") {
      return Verdict::Reject(R(550, "5.7.1", "No email accepted from you"));
    }
    Verdict v;
    v.style_flags = "ve";
    return v;
  };
  EXPECT_EQ(d.Feed("HELO bad.example\r\n"),
            "550 5.7.1 No email accepted from you\r\n");
  EXPECT_EQ(d.session().state(), Session::State::kGreeting);
  d.Feed("EHLO good.example\r\n");
  EXPECT_EQ(d.session().style_flags(), "ve");
  EXPECT_TRUE(d.session().HasStyle('v'));
  EXPECT_FALSE(d.session().HasStyle('R'));
  // Without R: sloppy syntax is accepted.
  EXPECT_EQ(d.Feed("MAIL FROM: a@b.example\r\n"), "250 2.1.0 Ok\r\n");
  EXPECT_EQ(d.Feed("RCPT TO: <x@mx.test>\r\n"), "250 2.1.5 Ok\r\n");
}

TEST(Checks, StrictSyntaxByDefault) {
  Driver d(Config());
  d.Feed("EHLO c\r\n");
  EXPECT_EQ(d.Feed("MAIL FROM: <a@b.example>\r\n"),
            "501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
  EXPECT_EQ(d.Feed("MAIL FROM:a@b.example\r\n"),
            "501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
  EXPECT_EQ(d.Feed("HELO two words\r\n"),
            "501 5.5.4 Syntax: HELO hostname\r\n");
}

TEST(Checks, MessageCheckRejectsFreezesAndSeesTheWholeMessage) {
  Driver d(Config());
  std::string seen;
  d.decide = [&](const Session& s, const Check& c) -> std::optional<Verdict> {
    if (c.kind != CheckKind::kMessage) return std::nullopt;
    seen = c.staged_path;
    if (s.envelope().sender == "spam@b.example") {
      return Verdict::Reject(R(550, "5.7.0", "Content rejected"));
    }
    if (s.envelope().sender == "odd@b.example") {
      Verdict v;
      v.outcome = Verdict::Outcome::kFreeze;
      v.freeze_reason = "looks odd";
      return v;
    }
    return std::nullopt;
  };
  d.Feed("EHLO c\r\n");
  EXPECT_EQ(d.Feed("MAIL FROM:<spam@b.example>\r\nRCPT TO:<x@mx.test>\r\n"
                   "DATA\r\nbuy\r\n.\r\n"),
            "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
            "354 End data with <CR><LF>.<CR><LF>\r\n"
            "550 5.7.0 Content rejected\r\n");
  EXPECT_EQ(seen, "/spool/public/QID1");
  EXPECT_TRUE(d.stored.empty());
  EXPECT_EQ(d.aborted, 1);
  EXPECT_EQ(d.session().last_reply().Summary(), "550 5.7.0 Content rejected");
  EXPECT_TRUE(Has(d.Feed("MAIL FROM:<odd@b.example>\r\nRCPT TO:<x@mx.test>\r\n"
                         "DATA\r\nhm\r\n.\r\n"),
                  "250 2.0.0 Ok: queued as QID1"));
  ASSERT_EQ(d.stored.size(), 1u);
  EXPECT_TRUE(d.stored[0].frozen);
  EXPECT_FALSE(d.session().frozen());  // reset for the next transaction
}

TEST(Checks, VerdictCloseEndsTheSession) {
  Driver d(Config());
  d.decide = [](const Session&, const Check& c) -> std::optional<Verdict> {
    if (c.kind != CheckKind::kRcptTo) return std::nullopt;
    return Verdict::Reject(R(421, "4.7.0", "Too many errors"), true);
  };
  std::string out = d.Feed(std::string(kTransaction) + "NOOP\r\n");
  EXPECT_TRUE(Has(out, "421 4.7.0 Too many errors\r\n")) << out;
  EXPECT_FALSE(Has(out, "250 2.0.0 Ok")) << out;
  EXPECT_TRUE(d.closed);
}

// --- Tarpit -----------------------------------------------------------

TEST(Tarpit, EveryErrorReplyGrowsTheDelay) {
  SessionConfig c = Config();
  c.tarpit_initial_ms = 100;
  c.tarpit_exponent = 1.0;
  c.tarpit_max_ms = 300;
  Driver d(c);
  d.Feed("NOOP\r\n");
  EXPECT_EQ(d.delay_ms, 0u);
  d.Feed("BOGUS\r\n");
  EXPECT_EQ(d.delay_ms, 100u);
  d.delay_ms = 0;
  d.Feed("BOGUS\r\n");
  EXPECT_EQ(d.delay_ms, 200u);  // 100 + 100 * 1
  d.delay_ms = 0;
  d.Feed("BOGUS\r\n");
  EXPECT_EQ(d.delay_ms, 300u);  // capped
  d.delay_ms = 0;
  d.Feed("NOOP\r\n");
  EXPECT_EQ(d.delay_ms, 0u);
}

TEST(Tarpit, VerdictDelayIsAddedAndTakenOnce) {
  Driver d(Config());
  d.decide = [](const Session&, const Check& c) -> std::optional<Verdict> {
    if (c.kind != CheckKind::kHelo) return std::nullopt;
    Verdict v;
    v.delay_ms = 1500;
    return v;
  };
  d.Feed("HELO c\r\n");
  EXPECT_EQ(d.delay_ms, 1500u);
  EXPECT_EQ(d.session().TakeDelayMs(), 0u);
}

// --- STARTTLS ---------------------------------------------------------

SessionConfig TlsConfig() {
  SessionConfig c = Config();
  c.starttls = true;
  c.rcvd_tls_mode = true;
  c.rcvd_tls_ccert = true;
  c.rcvd_auth_user = true;
  return c;
}

TEST(StartTls, OfferedUntilActiveAndDiscardsPipelinedPlaintext) {
  Driver d(TlsConfig());
  std::string out = d.Feed("EHLO c\r\n");
  EXPECT_TRUE(Has(out, "250-STARTTLS\r\n")) << out;
  EXPECT_FALSE(Has(out, "AUTH")) << out;  // not without TLS
  // Injection: commands pipelined behind STARTTLS in the same packet.
  out = d.Feed(
      "STARTTLS\r\nMAIL FROM:<evil@b.example>\r\nRCPT TO:<x@mx.test>\r\n");
  EXPECT_EQ(out, "220 2.0.0 Ready to start TLS\r\n");
  EXPECT_EQ(d.tls_handshakes, 1);
  EXPECT_TRUE(d.session().tls());
  EXPECT_EQ(d.session().state(), Session::State::kGreeting);
  EXPECT_EQ(d.session().helo(), "");
  // The injected MAIL was never executed; HELO must be given again.
  EXPECT_EQ(d.Feed("MAIL FROM:<a@b.example>\r\n"),
            "503 5.5.1 Send HELO/EHLO first\r\n");
  out = d.Feed("EHLO c\r\n");
  EXPECT_FALSE(Has(out, "STARTTLS")) << out;
  EXPECT_TRUE(Has(out, "250-AUTH PLAIN LOGIN\r\n")) << out;
  EXPECT_EQ(d.Feed("STARTTLS\r\n"), "503 5.5.1 TLS already active\r\n");
  d.Feed(
      "MAIL FROM:<a@b.example>\r\nRCPT TO:<x@mx.test>\r\nDATA\r\nhi\r\n.\r\n");
  ASSERT_EQ(d.stored.size(), 1u);
  EXPECT_EQ(d.stored[0].env.protocol, "ESMTPS");
  EXPECT_EQ(d.stored[0].env.tls, "TLSv1.3:TLS_AES_256_GCM_SHA384");
  EXPECT_TRUE(Has(d.stored[0].data,
                  "\n\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 "
                  "(256 bits))\n\t(client certificate CN=client.example, "
                  "not verified)\n"))
      << d.stored[0].data;
}

TEST(StartTls, NotOfferedOrBadUse) {
  Driver d(Config());
  d.Feed("EHLO c\r\n");
  EXPECT_EQ(d.Feed("STARTTLS\r\n"),
            "502 5.5.1 STARTTLS command not implemented\r\n");
  Driver t(TlsConfig());
  t.Feed("EHLO c\r\n");
  EXPECT_EQ(t.Feed("STARTTLS now\r\n"), "501 5.5.4 Syntax: STARTTLS\r\n");
  t.Feed("MAIL FROM:<a@b.example>\r\n");
  EXPECT_EQ(t.Feed("STARTTLS\r\n"),
            "503 5.5.1 STARTTLS not allowed during a transaction\r\n");
}

TEST(StartTls, FailedHandshakeCloses) {
  Driver d(TlsConfig());
  d.tls_fails = true;
  d.Feed("EHLO c\r\nSTARTTLS\r\n");
  EXPECT_TRUE(d.closed);
}

TEST(StartTls, ImplicitTlsOnPort465) {
  ClientInfo ci = Driver::Client();
  ci.listener = Listener::kSmtps;
  ci.tls = true;
  ci.tls_info.version = "TLSv1.2";
  Driver d(TlsConfig(), ci);
  std::string out = d.Feed("EHLO c\r\n");
  EXPECT_FALSE(Has(out, "STARTTLS")) << out;
  EXPECT_TRUE(Has(out, "AUTH PLAIN LOGIN")) << out;
}

// --- AUTH -------------------------------------------------------------

SessionConfig AuthConfig() {
  SessionConfig c = Config();
  c.auth_without_tls = true;
  c.rcvd_auth_user = true;
  return c;
}

std::string Plain(std::string_view authzid, std::string_view user,
                  std::string_view password) {
  std::string m(authzid);
  m += '\0';
  m += user;
  m += '\0';
  m += password;
  return Base64Encode(m);
}

TEST(Auth, NeedsTlsUnlessConfigured) {
  Driver d(Config());
  std::string out = d.Feed("EHLO c\r\n");
  EXPECT_FALSE(Has(out, "AUTH")) << out;
  EXPECT_EQ(d.Feed("AUTH PLAIN " + Plain("", "alice", "secret") + "\r\n"),
            "538 5.7.11 Encryption required for requested authentication "
            "mechanism\r\n");
  SessionConfig off = Config();
  off.auth = false;
  Driver n(off);
  n.Feed("EHLO c\r\n");
  EXPECT_EQ(n.Feed("AUTH PLAIN\r\n"),
            "502 5.5.1 AUTH command not implemented\r\n");
}

TEST(Auth, PlainWithInitialResponseAllowsRelay) {
  Driver d(AuthConfig());
  std::string out = d.Feed("EHLO c\r\n");
  EXPECT_TRUE(Has(out, "250-AUTH PLAIN LOGIN\r\n")) << out;
  EXPECT_EQ(d.Feed("AUTH PLAIN " + Plain("", "alice", "secret") + "\r\n"),
            "235 2.7.0 Authentication successful\r\n");
  EXPECT_EQ(d.session().auth_user(), "alice");
  const Check& c = d.asked.back();
  EXPECT_EQ(c.kind, CheckKind::kAuth);
  EXPECT_EQ(c.mechanism, "PLAIN");
  EXPECT_EQ(c.user, "alice");
  EXPECT_EQ(d.session().pending_check().password, "");  // not kept
  EXPECT_EQ(d.Feed("AUTH PLAIN " + Plain("", "alice", "secret") + "\r\n"),
            "503 5.5.1 Already authenticated\r\n");
  out = d.Feed(
      "MAIL FROM:<alice@b.example> AUTH=alice@b.example\r\n"
      "RCPT TO:<far@away.example>\r\nDATA\r\nhi\r\n.\r\n");
  EXPECT_TRUE(Has(out, "250 2.1.5 Ok\r\n")) << out;
  ASSERT_EQ(d.stored.size(), 1u);
  EXPECT_EQ(d.stored[0].env.protocol, "ESMTPA");
  EXPECT_EQ(d.stored[0].env.auth_user, "alice");
  EXPECT_TRUE(Has(d.stored[0].data, "\n\t(authenticated user alice)\n"))
      << d.stored[0].data;
}

TEST(Auth, PlainChallengeAndLoginPrompts) {
  Driver d(AuthConfig());
  d.Feed("EHLO c\r\n");
  EXPECT_EQ(d.Feed("AUTH PLAIN\r\n"), "334 \r\n");
  EXPECT_EQ(d.Feed(Plain("admin", "alice", "secret") + "\r\n"),
            "235 2.7.0 Authentication successful\r\n");
  EXPECT_EQ(d.asked.back().authzid, "admin");

  Driver l(AuthConfig());
  l.Feed("EHLO c\r\n");
  EXPECT_EQ(l.Feed("auth login\r\n"), "334 VXNlcm5hbWU6\r\n");
  EXPECT_EQ(l.Feed(Base64Encode("alice") + "\r\n"), "334 UGFzc3dvcmQ6\r\n");
  EXPECT_EQ(l.Feed(Base64Encode("wrong") + "\r\n"),
            "535 5.7.8 Authentication credentials invalid\r\n");
  EXPECT_FALSE(l.session().authenticated());
  EXPECT_EQ(l.Feed("AUTH LOGIN " + Base64Encode("alice") + "\r\n"),
            "334 UGFzc3dvcmQ6\r\n");
  EXPECT_EQ(l.Feed(Base64Encode("secret") + "\r\n"),
            "235 2.7.0 Authentication successful\r\n");
  EXPECT_EQ(l.asked.back().mechanism, "LOGIN");
}

TEST(Auth, CancelBadBase64AndBadUse) {
  Driver d(AuthConfig());
  EXPECT_EQ(d.Feed("AUTH PLAIN\r\n"), "503 5.5.1 Send EHLO first\r\n");
  d.Feed("EHLO c\r\n");
  d.Feed("AUTH LOGIN\r\n");
  EXPECT_EQ(d.Feed("*\r\n"), "501 5.0.0 Authentication cancelled\r\n");
  EXPECT_EQ(d.Feed("AUTH PLAIN !!!notbase64\r\n"),
            "501 5.5.2 Bad base64 data\r\n");
  EXPECT_EQ(d.Feed("AUTH PLAIN " + Base64Encode("no-nuls") + "\r\n"),
            "501 5.5.2 Bad PLAIN credentials\r\n");
  EXPECT_EQ(d.Feed("AUTH CRAM-MD5\r\n"),
            "504 5.5.4 Unrecognized authentication type\r\n");
  EXPECT_EQ(d.Feed("AUTH\r\n"),
            "501 5.5.4 Syntax: AUTH mechanism [initial-response]\r\n");
  d.Feed("MAIL FROM:<a@b.example>\r\n");
  EXPECT_EQ(d.Feed("AUTH PLAIN\r\n"),
            "503 5.5.1 AUTH not allowed during a transaction\r\n");
  // The session is still usable.
  EXPECT_EQ(d.Feed("RSET\r\n"), "250 2.0.0 Ok\r\n");
}

TEST(Auth, SubmissionNeedsAuthentication) {
  ClientInfo ci = Driver::Client();
  ci.listener = Listener::kSubmission;
  Driver d(AuthConfig(), ci);
  d.Feed("EHLO c\r\n");
  EXPECT_EQ(d.Feed("MAIL FROM:<alice@b.example>\r\n"),
            "530 5.7.0 Authentication required\r\n");
  d.Feed("AUTH PLAIN " + Plain("", "alice", "secret") + "\r\n");
  EXPECT_EQ(d.Feed("MAIL FROM:<alice@b.example>\r\n"), "250 2.1.0 Ok\r\n");
  // A trusted network needs no AUTH on the submission port.
  ClientInfo tr = ci;
  tr.trusted = true;
  Driver t(AuthConfig(), tr);
  t.Feed("EHLO c\r\n");
  EXPECT_EQ(t.Feed("MAIL FROM:<a@b.example>\r\n"), "250 2.1.0 Ok\r\n");
}

TEST(Auth, MsaModeNeedsAuthenticationOnTheSmtpPortToo) {
  SessionConfig c = AuthConfig();
  c.msa_mode = true;
  Driver d(c);
  d.Feed("EHLO c\r\n");
  EXPECT_EQ(d.Feed("MAIL FROM:<alice@b.example>\r\n"),
            "530 5.7.0 Authentication required\r\n");
  d.Feed("AUTH PLAIN " + Plain("", "alice", "secret") + "\r\n");
  EXPECT_EQ(d.Feed("MAIL FROM:<alice@b.example>\r\n"), "250 2.1.0 Ok\r\n");
  // Without MSA-mode the smtp port serves strangers (as an MX must).
  Driver n(AuthConfig());
  n.Feed("EHLO c\r\n");
  EXPECT_EQ(n.Feed("MAIL FROM:<a@b.example>\r\n"), "250 2.1.0 Ok\r\n");
}

TEST(Auth, LinesUpTo12288Bytes) {
  Driver d(AuthConfig());
  d.Feed("EHLO c\r\n");
  // A long (wrong) password: the AUTH line is over 1,000 bytes but within
  // RFC 4954's 12,288, so it is decoded and checked.
  std::string pw(8000, 'p');
  std::string line = "AUTH PLAIN " + Plain("", "alice", pw);
  ASSERT_GT(line.size() + 2, kMaxCommandLine);
  ASSERT_LE(line.size() + 2, kMaxAuthLine);
  EXPECT_EQ(d.Feed(line + "\r\n"),
            "535 5.7.8 Authentication credentials invalid\r\n");
  EXPECT_EQ(d.asked.back().password, pw);
  // As the response to the 334 challenge too.
  EXPECT_EQ(d.Feed("AUTH PLAIN\r\n"), "334 \r\n");
  EXPECT_EQ(d.Feed(Plain("", "alice", pw) + "\r\n"),
            "535 5.7.8 Authentication credentials invalid\r\n");
  // Past 12,288 bytes: too long, and the session goes on.
  EXPECT_EQ(d.Feed("AUTH PLAIN " + std::string(12300, 'A') + "\r\n"),
            "500 5.5.2 Line too long\r\n");
  // Other commands keep the 1,000-byte limit.
  EXPECT_EQ(d.Feed("NOOP " + std::string(1200, 'x') + "\r\n"),
            "500 5.5.2 Line too long\r\n");
  EXPECT_EQ(d.Feed("AUTH PLAIN " + Plain("", "alice", "secret") + "\r\n"),
            "235 2.7.0 Authentication successful\r\n");
}

TEST(Replies, NoMultilineRepliesButEhlo) {
  SessionConfig c = Config();
  c.no_multiline_replies = true;
  c.help = {"first", "second", "last"};
  Driver d(c);
  std::string ehlo = d.Feed("EHLO c\r\n");
  EXPECT_TRUE(ehlo.starts_with("250-")) << ehlo;
  EXPECT_EQ(d.Feed("HELP\r\n"), "214 2.0.0 last\r\n");
  c.no_multiline_replies = false;
  Driver m(c);
  m.Feed("EHLO c\r\n");
  EXPECT_TRUE(m.Feed("HELP\r\n").starts_with("214-2.0.0 first\r\n"));
}

// --- BDAT (RFC 3030) --------------------------------------------------

TEST(Bdat, ChunksAreReadExactlyWithoutDotHandling) {
  Driver d(Config());
  d.Feed(kTransaction);
  // The chunk holds a dot line and something that looks like a command.
  std::string chunk1 = "Subject: c\r\n\r\n.\r\nMAIL FROM:<evil@x>\r\n";
  std::string out = d.Feed(StrCat("BDAT ", chunk1.size(), "\r\n", chunk1));
  EXPECT_EQ(out, StrCat("250 2.0.0 ", chunk1.size(), " octets received\r\n"));
  EXPECT_TRUE(d.stored.empty());
  // A chunk split over several reads, its CRLF split between chunks.
  std::string chunk2 = "..two\r";
  EXPECT_EQ(d.Feed(StrCat("BDAT ", chunk2.size(), "\r\n..t")), "");
  EXPECT_EQ(d.Feed("wo\r"), "250 2.0.0 6 octets received\r\n");
  EXPECT_EQ(d.Feed("BDAT 5 LAST\r\n\nend\n"),
            "250 2.0.0 Ok: queued as QID1\r\n");
  ASSERT_EQ(d.stored.size(), 1u);
  std::string body = d.stored[0].data.substr(d.stored[0].data.find("Subject"));
  EXPECT_EQ(body, "Subject: c\n\n.\nMAIL FROM:<evil@x>\n..two\nend\n");
  EXPECT_EQ(d.Feed("NOOP\r\n"), "250 2.0.0 Ok\r\n");
}

TEST(Bdat, ZeroLastEndsTheMessage) {
  Driver d(Config());
  d.Feed(kTransaction);
  EXPECT_EQ(d.Feed("BDAT 4\r\nhi\r\nBDAT 0 LAST\r\n"),
            "250 2.0.0 4 octets received\r\n250 2.0.0 Ok: queued as QID1\r\n");
  ASSERT_EQ(d.stored.size(), 1u);
  EXPECT_TRUE(Has(d.stored[0].data, "\nhi\n"));
  EXPECT_EQ(d.asked.back().kind, CheckKind::kMessage);
}

TEST(Bdat, SizeIsEnforcedAndLaterChunksAreSwallowed) {
  SessionConfig c = Config();
  c.max_message_size = 10;
  Driver d(c);
  d.Feed(kTransaction);
  std::string out =
      d.Feed("BDAT 20\r\n01234567890123456789BDAT 4 LAST\r\nQUIT");
  EXPECT_EQ(out,
            "552 5.3.4 Message size exceeds fixed limit\r\n"
            "503 5.5.1 Need MAIL command\r\n");
  EXPECT_EQ(d.aborted, 1);
  EXPECT_TRUE(d.stored.empty());
  EXPECT_FALSE(d.closed);  // "QUIT" was chunk data, not a command
  EXPECT_EQ(d.Feed("NOOP\r\n"), "250 2.0.0 Ok\r\n");
}

TEST(Bdat, OutOfSequenceOrDisabledStillReadsTheChunk) {
  Driver d(Config());
  d.Feed("EHLO c\r\n");
  EXPECT_EQ(d.Feed("BDAT 6\r\nQUIT\r\nNOOP\r\n"),
            "503 5.5.1 Need MAIL command\r\n250 2.0.0 Ok\r\n");
  EXPECT_EQ(d.Feed("BDAT x\r\n"), "501 5.5.4 Syntax: BDAT size [LAST]\r\n");
  EXPECT_EQ(d.Feed("BDAT 1 MORE\r\n"),
            "501 5.5.4 Syntax: BDAT size [LAST]\r\n");
  SessionConfig c = Config();
  c.chunking = false;
  Driver n(c);
  std::string out = n.Feed("EHLO c\r\n");
  EXPECT_FALSE(Has(out, "CHUNKING")) << out;
  EXPECT_EQ(n.Feed("BDAT 6 LAST\r\nQUIT\r\n"),
            "502 5.5.1 BDAT not available\r\n");
  EXPECT_FALSE(n.closed);
}

TEST(Bdat, OnlyChunkingCommandsBetweenChunksAndRsetAborts) {
  Driver d(Config());
  d.Feed(kTransaction);
  d.Feed("BDAT 3\r\nabc");
  EXPECT_EQ(d.Feed("MAIL FROM:<a@b.example>\r\n"),
            "503 5.5.1 Send BDAT, RSET, NOOP or QUIT\r\n");
  EXPECT_EQ(d.Feed("DATA\r\n"), "503 5.5.1 Send BDAT, RSET, NOOP or QUIT\r\n");
  EXPECT_EQ(d.Feed("RSET\r\n"), "250 2.0.0 Ok\r\n");
  EXPECT_EQ(d.aborted, 1);
  EXPECT_TRUE(d.stored.empty());
}

TEST(Bdat, EofMidChunkLeavesNothing) {
  Driver d(Config());
  d.Feed(kTransaction);
  d.Feed("BDAT 100 LAST\r\nhalf", /*eof=*/true);
  EXPECT_TRUE(d.closed);
  EXPECT_TRUE(d.stored.empty());
  EXPECT_EQ(d.aborted, 1);
}

// --- ETRN, VRFY, EXPN, HELP --------------------------------------------

TEST(Etrn, SyntaxSequenceAndVerdicts) {
  Driver d(Config());
  EXPECT_EQ(d.Feed("ETRN example.org\r\n"),
            "503 5.5.1 Send HELO/EHLO first\r\n");
  d.Feed("EHLO c\r\n");
  for (const char* bad : {"ETRN\r\n", "ETRN a b\r\n", "ETRN @\r\n",
                          "ETRN #\r\n", "ETRN bad..name\r\n"}) {
    EXPECT_EQ(d.Feed(bad), "501 5.5.4 Syntax: ETRN [@|#]node-name\r\n") << bad;
  }
  // BasicChecks has no scheduler to ask.
  EXPECT_EQ(d.Feed("ETRN example.org\r\n"),
            "458 4.3.0 Unable to queue messages for node example.org\r\n");
  d.decide = [](const Session&, const Check& c) -> std::optional<Verdict> {
    if (c.kind != CheckKind::kEtrn) return std::nullopt;
    if (c.arg == "#q1") {
      Verdict v;
      v.reply = R(251, "2.0.0", "OK, no messages waiting for node #q1");
      return v;
    }
    if (c.arg == "@nope.example") {
      return Verdict::Reject(
          R(459, "4.7.1", "Node @nope.example not allowed: unknown"));
    }
    return Verdict::Accept();
  };
  EXPECT_EQ(d.Feed("ETRN @example.org\r\n"),
            "250 2.0.0 Queuing for node @example.org started\r\n");
  EXPECT_EQ(d.Feed("ETRN #q1\r\n"),
            "251 2.0.0 OK, no messages waiting for node #q1\r\n");
  EXPECT_EQ(d.Feed("ETRN @nope.example\r\n"),
            "459 4.7.1 Node @nope.example not allowed: unknown\r\n");
  d.Feed("MAIL FROM:<a@b.example>\r\n");
  EXPECT_EQ(d.Feed("ETRN example.org\r\n"),
            "503 5.5.1 ETRN not allowed during a transaction\r\n");
  SessionConfig c = Config();
  c.etrn = false;
  Driver n(c);
  EXPECT_FALSE(Has(n.Feed("EHLO c\r\n"), "ETRN"));
  EXPECT_EQ(n.Feed("ETRN example.org\r\n"),
            "502 5.5.1 ETRN command not implemented\r\n");
}

TEST(VrfyExpn, OnlyWhenEnabledAndAnsweredByTheCheck) {
  Driver off(Config());
  EXPECT_EQ(off.Feed("VRFY root\r\n"), "502 5.5.1 VRFY command disabled\r\n");
  EXPECT_EQ(off.Feed("EXPN staff\r\n"), "502 5.5.1 EXPN command disabled\r\n");
  SessionConfig c = Config();
  c.vrfy = true;
  c.expn = true;
  Driver d(c);
  EXPECT_EQ(d.Feed("VRFY\r\n"), "501 5.5.4 Syntax: VRFY address\r\n");
  EXPECT_EQ(d.Feed("VRFY root\r\n"),
            "252 2.1.5 Cannot verify the user; try RCPT to attempt "
            "delivery\r\n");
  d.decide = [](const Session&, const Check& c) -> std::optional<Verdict> {
    if (c.kind == CheckKind::kVrfy) {
      return Verdict::Reject(R(550, "5.1.1", "<nobody@mx.test>: no such user"));
    }
    if (c.kind == CheckKind::kExpn) {
      Verdict v;
      Reply r;
      r.code = 250;
      r.enhanced = "2.1.5";
      r.lines = {"<a@mx.test>", "<b@mx.test>"};
      v.reply = r;
      return v;
    }
    return std::nullopt;
  };
  EXPECT_EQ(d.Feed("VRFY nobody\r\n"),
            "550 5.1.1 <nobody@mx.test>: no such user\r\n");
  EXPECT_EQ(d.Feed("EXPN staff\r\n"),
            "250-2.1.5 <a@mx.test>\r\n250 2.1.5 <b@mx.test>\r\n");
  EXPECT_EQ(d.asked.back().arg, "staff");
}

TEST(Help, ConfiguredLines) {
  SessionConfig c = Config();
  c.help = {"This is mx.test", "Mail postmaster@mx.test"};
  Driver d(c);
  EXPECT_EQ(
      d.Feed("HELP\r\n"),
      "214-2.0.0 This is mx.test\r\n214 2.0.0 Mail postmaster@mx.test\r\n");
  EXPECT_EQ(
      d.Feed("HELP MAIL\r\n"),
      "214-2.0.0 This is mx.test\r\n214 2.0.0 Mail postmaster@mx.test\r\n");
}

// --- Extensions --------------------------------------------------------

TEST(Extensions, DisablersAndAdvertisedValues) {
  SessionConfig c = Config();
  c.deliverby_min_sec = 600;
  c.rcpt_limit = 200;
  Driver d(c);
  std::string out = d.Feed("EHLO c\r\n");
  EXPECT_TRUE(Has(out, "250-DELIVERBY 600\r\n")) << out;
  EXPECT_TRUE(Has(out, "250 X-RCPTLIMIT 200\r\n")) << out;
  c.deliverby = false;
  c.chunking = false;
  c.eightbitmime = false;
  c.size = false;
  c.etrn = false;
  Driver n(c);
  out = n.Feed("EHLO c\r\n");
  for (const char* k :
       {"DELIVERBY", "CHUNKING", "8BITMIME", "SIZE", "ETRN", "SMTPUTF8"}) {
    EXPECT_FALSE(Has(out, k)) << k << "\n" << out;
  }
  EXPECT_EQ(n.Feed("MAIL FROM:<a@b.example> BY=60;R\r\n"),
            "555 5.5.4 Unsupported MAIL parameter BY\r\n");
}

TEST(Extensions, DeliverByAndDsnKeptInTheEnvelope) {
  Driver d(Config());
  d.Feed("EHLO c\r\n");
  EXPECT_EQ(d.Feed("MAIL FROM:<a@b.example> BY=0;R\r\n"),
            "501 5.5.4 Bad BY value\r\n");
  EXPECT_EQ(d.Feed("MAIL FROM:<a@b.example> BY=60;X\r\n"),
            "501 5.5.4 Bad BY value\r\n");
  std::string out = d.Feed(
      "MAIL FROM:<a@b.example> BY=3600;RT RET=HDRS ENVID=x+2By\r\n"
      "RCPT TO:<x@mx.test> NOTIFY=DELAY ORCPT=rfc822;x@mx.test\r\n"
      "DATA\r\nhi\r\n.\r\n");
  ASSERT_EQ(d.stored.size(), 1u) << out;
  const mail::Envelope& e = d.stored[0].env;
  EXPECT_EQ(e.deliverby, "3600;RT");
  EXPECT_EQ(e.ret, "HDRS");
  EXPECT_EQ(e.envid, "x+y");
  EXPECT_EQ(e.recipients[0].notify, "DELAY");
  EXPECT_EQ(e.recipients[0].orcpt, "rfc822;x@mx.test");
}

TEST(Extensions, SmtpUtf8) {
  Driver d(Config());
  d.Feed("EHLO c\r\n");
  EXPECT_EQ(d.Feed("MAIL FROM:<j\xC3\xB6rg@b.example>\r\n"),
            "553 5.6.7 Non-ASCII address requires SMTPUTF8\r\n");
  std::string out = d.Feed(
      "MAIL FROM:<j\xC3\xB6rg@b.example> SMTPUTF8\r\n"
      "RCPT TO:<\xC3\xA4@mx.test>\r\nDATA\r\nhi\r\n.\r\n");
  ASSERT_EQ(d.stored.size(), 1u) << out;
  EXPECT_TRUE(d.stored[0].env.smtputf8);
  EXPECT_EQ(d.stored[0].env.protocol, "UTF8SMTP");
  EXPECT_TRUE(Has(d.stored[0].data, "with UTF8SMTP id QID1"));
}

TEST(Extensions, ReceivedIdentAndPlainProtocols) {
  SessionConfig c = Config();
  c.rcvd_ident = true;
  ClientInfo ci = Driver::Client();
  ci.ident = "bob";
  ci.name = "client.example";
  Driver d(c, ci);
  d.Feed(
      "HELO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@mx.test>\r\n"
      "DATA\r\nhi\r\n.\r\n");
  ASSERT_EQ(d.stored.size(), 1u);
  EXPECT_EQ(d.stored[0].env.protocol, "SMTP");
  EXPECT_EQ(d.stored[0].data.rfind(
                "Received: from c (client.example [192.0.2.7]) (ident bob)\n"
                "\tby mx.test (zmnode) with SMTP id QID1\n",
                0),
            0u)
      << d.stored[0].data;
}

// --- Bad input ---------------------------------------------------------

TEST(BadInput, NulBytesAndGarbage) {
  Driver d(Config());
  EXPECT_EQ(d.Feed(std::string("NOOP\0x\r\n", 8)),
            "500 5.5.2 NUL character in command\r\n");
  EXPECT_EQ(d.Feed("\xff\xfe\x01\x02garbage\r\n"),
            "500 5.5.1 Command unrecognized\r\n");
  EXPECT_EQ(d.Feed("NOOP\r\n"), "250 2.0.0 Ok\r\n");
}

TEST(BadInput, TooManyErrorsOfAnyKindClose) {
  SessionConfig c = Config();
  c.max_unknown_commands = 4;
  Driver d(c);
  std::string out = d.Feed("MAIL FROM:<a@b.example>\r\nBOGUS\r\n" +
                           std::string(1200, 'x') + "\r\nHELO\r\nNOOP\r\n");
  EXPECT_TRUE(Has(out, "503 5.5.1"));
  EXPECT_TRUE(Has(out, "500 5.5.2 Line too long"));
  EXPECT_TRUE(Has(out, "421 4.7.0 Too many errors, closing connection\r\n"));
  EXPECT_FALSE(Has(out, "250 2.0.0 Ok"));
  EXPECT_TRUE(d.closed);
}

TEST(BadInput, EofMidDataLeavesNothing) {
  Driver d(Config());
  d.Feed(std::string(kTransaction) + "DATA\r\n");
  d.Feed("Subject: x\r\n\r\nbody\r\n.", /*eof=*/true);
  EXPECT_TRUE(d.closed);
  EXPECT_TRUE(d.stored.empty());
  EXPECT_EQ(d.aborted, 1);
}

}  // namespace
}  // namespace zm::smtp
