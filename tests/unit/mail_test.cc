#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>

#include "node/mail/control.h"
#include "node/mail/envelope.h"
#include "node/mail/queue_id.h"
#include "node/mail/rfc5322.h"
#include "node/mail/xtext.h"

namespace zm::mail {
namespace {

TEST(Xtext, RoundTripsAwkwardBytes) {
  std::string raw = "\"a b\"+c=d@ex\xc3\xa4mple|cmd\n";
  std::string enc = XtextEncode(raw);
  EXPECT_EQ(enc.find(' '), std::string::npos);
  EXPECT_EQ(enc.find('='), std::string::npos);
  auto dec = XtextDecode(enc);
  ASSERT_TRUE(dec.ok());
  EXPECT_EQ(*dec, raw);
}

TEST(Xtext, RefusesBrokenEscape) {
  EXPECT_FALSE(XtextDecode("a+4").ok());
  EXPECT_FALSE(XtextDecode("a+zz").ok());
}

TEST(QueueId, FreshIdsAreValidUniqueAndCarryTheNode) {
  std::string a = NewQueueId("mx1");
  std::string b = NewQueueId("mx1");
  EXPECT_NE(a, b);
  EXPECT_TRUE(IsQueueId(a)) << a;
  EXPECT_EQ(a.substr(a.size() - 4), "-mx1");
  EXPECT_LT(a, b);  // ids sort by arrival within a process
  EXPECT_FALSE(IsQueueId("../etc/passwd"));
  EXPECT_FALSE(IsQueueId(a.substr(0, 10)));
  EXPECT_EQ(NodeTag("mx-1.example.net"), "mx1examplenet");
  EXPECT_EQ(NodeTag("---"), "node");
}

Envelope SampleEnvelope() {
  Envelope env;
  env.queue_id = "0GC4H8WY3TQ2K7PX-mx1";
  env.arrival_usec = 1763680000123456;
  env.sender = "alice@example.org";
  env.recipients.push_back(
      {"bob@example.net", "SUCCESS,FAILURE", "rfc822;bob@example.net"});
  env.recipients.push_back({"\"odd user\"@example.net", "", ""});
  env.envid = "env 1";
  env.ret = "HDRS";
  env.protocol = "ESMTP";
  env.client_addr = "192.0.2.7";
  env.helo = "client.example";
  env.smtputf8 = true;
  return env;
}

TEST(Envelope, RoundTrip) {
  Envelope env = SampleEnvelope();
  std::string body = "Subject: hi\n\nhello\n";
  env.size = body.size();
  std::string file = SerializeEnvelope(env, nullptr) + body;
  auto mf = ParseMessageFile(file);
  ASSERT_TRUE(mf.ok()) << mf.status();
  EXPECT_EQ(file.substr(mf->body_offset), body);
  const Envelope& got = mf->envelope;
  EXPECT_EQ(got.queue_id, env.queue_id);
  EXPECT_EQ(got.arrival_usec / 1000, env.arrival_usec / 1000);
  EXPECT_EQ(got.sender, env.sender);
  ASSERT_EQ(got.recipients.size(), 2u);
  EXPECT_EQ(got.recipients[0].notify, "SUCCESS,FAILURE");
  EXPECT_EQ(got.recipients[0].orcpt, "rfc822;bob@example.net");
  EXPECT_EQ(got.recipients[1].address, "\"odd user\"@example.net");
  EXPECT_EQ(got.envid, "env 1");
  EXPECT_EQ(got.ret, "HDRS");
  EXPECT_TRUE(got.smtputf8);
  EXPECT_EQ(got.client_addr, "192.0.2.7");
}

TEST(Envelope, NullSenderSurvives) {
  Envelope env = SampleEnvelope();
  env.sender = "";
  auto mf = ParseMessageFile(SerializeEnvelope(env, nullptr));
  ASSERT_TRUE(mf.ok()) << mf.status();
  EXPECT_EQ(mf->envelope.sender, "");
}

TEST(Envelope, DetectsTruncation) {
  Envelope env = SampleEnvelope();
  std::string body = "Subject: hi\n\nhello\n";
  env.size = body.size();
  std::string file = SerializeEnvelope(env, nullptr) + body;
  auto cut = ParseMessageFile(file.substr(0, file.size() - 3));
  EXPECT_EQ(cut.status().code(), absl::StatusCode::kDataLoss);
  auto cut_env = ParseMessageFile(file.substr(0, 40));
  EXPECT_EQ(cut_env.status().code(), absl::StatusCode::kDataLoss);
}

TEST(Envelope, NamesTheBadLine) {
  auto mf = ParseMessageFile("zmnode-message 1\nid X\nbogus 1\n");
  ASSERT_FALSE(mf.ok());
  EXPECT_NE(mf.status().message().find("line 3"), std::string::npos)
      << mf.status();
}

TEST(Envelope, SizeFieldPatchOffset) {
  Envelope env = SampleEnvelope();
  size_t off = 0;
  std::string head = SerializeEnvelope(env, &off);
  EXPECT_EQ(head.substr(off, kSizeDigits), FormatSizeField(0));
}

ControlFile SampleControl() {
  ControlFile cf;
  cf.queue_id = "0GC4H8WY3TQ2K7PX-mx1";
  cf.body_offset = 321;
  cf.sender = "alice@example.org";
  cf.error_to = "alice@example.org";
  cf.envid = "e1";
  cf.recipients.push_back(
      {0, "local", "root", "root", "FAILURE", "", "root@localhost", ""});
  cf.recipients.push_back(
      {1, "local", "pipe", "|/bin/cat > /tmp/x", "", "", "pipe@localhost", ""});
  cf.recipients.push_back({2, "error", "nouser", "x@localhost", "", "",
                           "x@localhost", "user unknown"});
  return cf;
}

TEST(Control, RoundTripWithResults) {
  ControlFile cf = SampleControl();
  std::string file = SerializeControl(cf);
  file += SerializeResult({0, ResultStatus::kDelivered, 1700000000, "2.0.0",
                           "delivered to mailbox"});
  file += SerializeResult(
      {2, ResultStatus::kFailed, 1700000001, "5.1.1", "user unknown"});
  auto got = ParseControl(file);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->recipients.size(), 3u);
  EXPECT_EQ(got->recipients[1].user, "|/bin/cat > /tmp/x");
  EXPECT_EQ(got->recipients[2].diag, "user unknown");
  EXPECT_EQ(got->body_offset, 321u);
  ASSERT_EQ(got->results.size(), 2u);
  EXPECT_EQ(got->results[1].status, ResultStatus::kFailed);
  EXPECT_EQ(got->results[1].dsn, "5.1.1");
  EXPECT_EQ(got->results[0].diag, "delivered to mailbox");
}

TEST(Control, TornLastAppendIsIgnored) {
  std::string file = SerializeControl(SampleControl());
  file += "d 0 ok 17000";  // crash in the middle of an append
  auto got = ParseControl(file);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->results.empty());
}

TEST(Control, UnfinishedFileIsDataLoss) {
  std::string file = SerializeControl(SampleControl());
  file.resize(file.size() - 4);  // "end\n" missing
  EXPECT_EQ(ParseControl(file).status().code(), absl::StatusCode::kDataLoss);
}

TEST(Control, TornAppendCompletedByALaterWriterIsSkipped) {
  std::string file = SerializeControl(SampleControl());
  file += "d 0 ok 17000\n";      // torn, then the next writer added a newline
  file += "d 9 ok 1 2.0.0 x\n";  // no such recipient
  file += SerializeResult({2, ResultStatus::kFailed, 5, "5.1.1", "gone"});
  auto got = ParseControl(file);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->skipped_lines, 2);
  ASSERT_EQ(got->results.size(), 1u);
  EXPECT_EQ(got->results[0].index, 2);
  EXPECT_EQ(got->results[0].diag, "gone");
}

TEST(Rfc5322, DateIsEnglishWithOffset) {
  ::setenv("TZ", "UTC", 1);
  ::tzset();
  EXPECT_EQ(Rfc5322Date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
  ::setenv("TZ", "EST5", 1);
  ::tzset();
  EXPECT_EQ(Rfc5322Date(1763680000), "Thu, 20 Nov 2025 18:06:40 -0500");
}

}  // namespace
}  // namespace zm::mail
