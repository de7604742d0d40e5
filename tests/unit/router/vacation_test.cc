// The vacation program's RFC 3834 rules, without sending anything.
#include "node/ta/vacation/vacation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace zm::vacation {
namespace {

using ::testing::HasSubstr;

Options Alice() {
  Options o;
  o.user = "alice";
  return o;
}

TEST(VacationTest, RepliesToPersonalMail) {
  EXPECT_FALSE(SkipReason(Alice(), "bob@example.org",
                          "To: Alice <alice@example.net>\nSubject: hi\n"));
}

TEST(VacationTest, NeverToNullListsBulkOrAutoSubmitted) {
  std::string to = "To: alice@example.net\n";
  EXPECT_TRUE(SkipReason(Alice(), "", to));
  EXPECT_TRUE(SkipReason(Alice(), "MAILER-DAEMON@example.org", to));
  EXPECT_TRUE(SkipReason(Alice(), "owner-list@example.org", to));
  EXPECT_TRUE(SkipReason(Alice(), "list-request@example.org", to));
  EXPECT_TRUE(SkipReason(Alice(), "bob@example.org",
                         to + "Auto-Submitted: auto-replied\n"));
  EXPECT_FALSE(SkipReason(Alice(), "bob@example.org",
                          to + "Auto-Submitted: no\n"));
  EXPECT_TRUE(SkipReason(Alice(), "bob@example.org",
                         to + "Precedence: bulk\n"));
  EXPECT_TRUE(SkipReason(Alice(), "bob@example.org",
                         to + "List-Id: <x.example.org>\n"));
  // Not addressed to alice (a list or Bcc): no reply, unless an alias is.
  EXPECT_TRUE(SkipReason(Alice(), "bob@example.org", "To: all@example.net\n"));
  Options o = Alice();
  o.aliases = {"all@example.net"};
  EXPECT_FALSE(SkipReason(o, "bob@example.org", "To: all@example.net\n"));
}

TEST(VacationTest, OncePerSenderPerInterval) {
  std::string db, next;
  EXPECT_FALSE(RecentlyAnswered(db, "Bob@Example.org", 1000, 86400, &next));
  db = next;
  EXPECT_TRUE(RecentlyAnswered(db, "bob@example.org", 2000, 86400, &next));
  EXPECT_FALSE(RecentlyAnswered(db, "bob@example.org", 1000 + 86400, 86400,
                                &next));
}

TEST(VacationTest, ReplyIsMarkedAutoReplied) {
  std::string r = BuildReply(Alice(), "bob@example.org",
                             "Subject: lunch\nMessage-ID: <m1@x>\n",
                             "I am away.\n", "alice@example.net");
  EXPECT_THAT(r, HasSubstr("Auto-Submitted: auto-replied\n"));
  EXPECT_THAT(r, HasSubstr("Subject: Auto: lunch\n"));
  EXPECT_THAT(r, HasSubstr("In-Reply-To: <m1@x>\n"));
  EXPECT_THAT(r, HasSubstr("To: <bob@example.org>\n"));
  EXPECT_THAT(r, HasSubstr("\n\nI am away.\n"));
  std::string own = BuildReply(Alice(), "bob@example.org", "",
                               "Subject: Away\n\nback monday\n", "alice");
  EXPECT_THAT(own, HasSubstr("Subject: Away\n"));
  EXPECT_THAT(own, HasSubstr("\n\nback monday\n"));
}

}  // namespace
}  // namespace zm::vacation
