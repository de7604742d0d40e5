#include "node/scheduler/scheduler_dsn.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>

namespace zm::scheduler {
namespace {

DsnRequest Request() {
  DsnRequest r;
  r.queue_id = "0GC4H8WY3TQ2K7PX-mx1";
  r.hostname = "mx1.example.net";
  r.original_sender = "alice@example.org";
  r.envid = "env-42";
  r.arrival = 1763680000;
  r.now = 1763680100;
  r.original = "Subject: hi\nFrom: alice@example.org\n\nbody line\n";
  r.recipients.push_back({"bob@example.net", "rfc822;Bob@Example.net", "failed",
                          "5.1.1", "user unknown", "", 1763680099});
  return r;
}

TEST(DsnTest, FailureReportHasTheThreeParts) {
  ::setenv("TZ", "UTC", 1);  // dates are rendered in local time
  ::tzset();
  std::string m = RenderDsn(Request());
  EXPECT_NE(
      m.find("From: Mail Delivery System <MAILER-DAEMON@mx1.example.net>\n"),
      std::string::npos);
  EXPECT_NE(m.find("Subject: Undelivered Mail Returned to Sender\n"),
            std::string::npos);
  EXPECT_NE(m.find("Auto-Submitted: auto-replied\n"), std::string::npos);
  std::string b = "0GC4H8WY3TQ2K7PX-mx1/1763680100/mx1.example.net";
  EXPECT_NE(m.find("boundary=\"" + b + "\""), std::string::npos);
  EXPECT_NE(m.find("--" + b + "\nContent-Description: Notification"),
            std::string::npos);
  EXPECT_NE(
      m.find("Content-Type: message/delivery-status\n\nReporting-MTA: dns; "
             "mx1.example.net\n"),
      std::string::npos);
  EXPECT_NE(m.find("Original-Envelope-Id: env-42\n"), std::string::npos);
  EXPECT_NE(m.find("Arrival-Date: Thu, 20 Nov 2025 23:06:40 +0000\n"),
            std::string::npos);
  EXPECT_NE(m.find("\nFinal-Recipient: rfc822; bob@example.net\n"
                   "Original-Recipient: rfc822; Bob@Example.net\n"
                   "Action: failed\nStatus: 5.1.1\n"
                   "Diagnostic-Code: X-Zmnode; user unknown\n"),
            std::string::npos)
      << m;
  // Default RET: headers only, and the text says so.
  EXPECT_NE(m.find("Its headers are attached below.\n"), std::string::npos);
  EXPECT_NE(m.find("Content-Type: text/rfc822-headers\n\nSubject: hi\nFrom: "
                   "alice@example.org\n"),
            std::string::npos);
  EXPECT_EQ(m.find("body line"), std::string::npos);
  EXPECT_NE(m.find("\n--" + b + "--\n"), std::string::npos);
  EXPECT_NE(m.find("0GC4H8WY3TQ2K7PX-mx1"), std::string::npos);
}

TEST(DsnTest, RetFullReturnsTheMessage) {
  DsnRequest r = Request();
  r.ret = "FULL";
  std::string m = RenderDsn(r);
  EXPECT_NE(m.find("Content-Type: message/rfc822\n\nSubject: hi\n"),
            std::string::npos);
  EXPECT_NE(m.find("body line\n"), std::string::npos);
  EXPECT_NE(m.find("It is attached below.\n"), std::string::npos);
  r.max_full_bytes = 10;  // too big: headers only
  EXPECT_EQ(RenderDsn(r).find("body line"), std::string::npos);
}

TEST(DsnTest, SuccessReport) {
  DsnRequest r = Request();
  r.recipients[0].action = "delivered";
  r.recipients[0].status = "2.0.0";
  std::string m = RenderDsn(r);
  EXPECT_NE(m.find("Subject: Successful Mail Delivery Report\n"),
            std::string::npos);
  EXPECT_NE(m.find("Action: delivered\n"), std::string::npos);
}

TEST(DsnTest, NotifyRules) {
  EXPECT_TRUE(WantsDsn("", true));
  EXPECT_FALSE(WantsDsn("", false));
  EXPECT_FALSE(WantsDsn("NEVER", true));
  EXPECT_TRUE(WantsDsn("SUCCESS,FAILURE", false));
  EXPECT_TRUE(WantsDsn("FAILURE", true));
  EXPECT_FALSE(WantsDsn("SUCCESS", true));
  EXPECT_FALSE(WantsDsn("DELAY", true));
}

TEST(DsnTest, HeaderInjectionIsFlattened) {
  DsnRequest r = Request();
  r.recipients[0].diagnostic = "bad\nBcc: evil@example";
  std::string m = RenderDsn(r);
  EXPECT_EQ(m.find("\nBcc: evil"), std::string::npos);
}

}  // namespace
}  // namespace zm::scheduler
