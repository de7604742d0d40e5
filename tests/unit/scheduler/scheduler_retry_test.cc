// Retry timing (NextAttemptMs), the retry-state file format, and delay
// reports: pure functions, with the clock passed in.
#include <gtest/gtest.h>

#include <cstdlib>
#include <set>

#include "node/scheduler/scheduler.h"
#include "node/scheduler/scheduler_dsn.h"

namespace zm::scheduler {
namespace {

TEST(RetryTest, FactorsOfIntervalThenRandomPointInTheSecondHalf) {
  ThreadParams p;
  p.interval_ms = 60'000;
  p.retries = {1, 2, 3, 5, 8, 13};
  p.skew = 0;  // no alignment
  uint64_t rng = 42;
  const int64_t now = 1'000'000'000'000;
  EXPECT_EQ(NextAttemptMs(p, 1, now, &rng), now + 60'000);
  EXPECT_EQ(NextAttemptMs(p, 2, now, &rng), now + 120'000);
  EXPECT_EQ(NextAttemptMs(p, 6, now, &rng), now + 13 * 60'000);
  std::set<int64_t> seen;
  for (int i = 0; i < 200; ++i) {
    int64_t next = NextAttemptMs(p, 7 + i, now, &rng);
    int64_t factor = (next - now) / 60'000;
    EXPECT_TRUE(factor == 5 || factor == 8 || factor == 13) << factor;
    seen.insert(factor);
  }
  EXPECT_EQ(seen.size(), 3u);  // every point of the second half is used
}

TEST(RetryTest, SkewAlignsLaterTriesToIntervalBoundaries) {
  ThreadParams p;
  p.interval_ms = 60'000;
  p.retries = {1, 1, 1};
  p.skew = 1;
  uint64_t rng = 1;
  const int64_t now = 1'000'000'000'123;
  EXPECT_EQ(NextAttemptMs(p, 1, now, &rng), now + 60'000);  // tries <= skew
  int64_t next = NextAttemptMs(p, 2, now, &rng);
  EXPECT_EQ(next % 60'000, 0);
  EXPECT_GE(next, now + 60'000);
}

TEST(RetryTest, RetryStateRoundTripsAndSkipsTornLines) {
  std::vector<RetryRecord> in = {
      {0, 3, 1763680000123, false, "4.2.2", "mailbox busy"},
      {2, 1, 1763680999000, true, "", ""},
  };
  std::string text = SerializeRetry(in);
  auto out = ParseRetry(text + "5 1 17\n");  // a torn last line
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].index, 0);
  EXPECT_EQ(out[0].attempts, 3);
  EXPECT_EQ(out[0].next_ms, 1763680000123);
  EXPECT_FALSE(out[0].warned);
  EXPECT_EQ(out[0].dsn, "4.2.2");
  EXPECT_EQ(out[0].diag, "mailbox busy");
  EXPECT_EQ(out[1].index, 2);
  EXPECT_TRUE(out[1].warned);
  EXPECT_EQ(out[1].dsn, "");
  EXPECT_EQ(out[1].diag, "");
}

TEST(RetryTest, DelayReportNotifyRules) {
  EXPECT_TRUE(WantsDelayDsn(""));
  EXPECT_TRUE(WantsDelayDsn("DELAY,FAILURE"));
  EXPECT_FALSE(WantsDelayDsn("FAILURE"));
  EXPECT_FALSE(WantsDelayDsn("NEVER"));
  EXPECT_FALSE(WantsDelayDsn("SUCCESS"));
}

TEST(RetryTest, DelayReportHasHeadersOnlyAndWillRetryUntil) {
  ::setenv("TZ", "UTC", 1);
  ::tzset();
  DsnRequest r;
  r.queue_id = "0GC4H8WY3TQ2K7PX-mx1";
  r.hostname = "mx1.example.net";
  r.original_sender = "alice@example.org";
  r.ret = "FULL";
  r.now = 1763680100;
  r.original = "Subject: hi\n\nsecret body\n";
  DsnRecipient d;
  d.final_recipient = "bob@example.net";
  d.action = "delayed";
  d.status = "4.4.1";
  d.diagnostic = "connection refused";
  d.will_retry_until = 1763939300;
  r.recipients.push_back(d);
  std::string m = RenderDsn(r);
  EXPECT_NE(m.find("Subject: Delayed Mail (still being retried)\n"),
            std::string::npos);
  EXPECT_NE(m.find("Action: delayed\nStatus: 4.4.1\n"), std::string::npos);
  EXPECT_NE(m.find("Will-Retry-Until: "), std::string::npos);
  EXPECT_NE(m.find("Content-Type: text/rfc822-headers"), std::string::npos);
  EXPECT_EQ(m.find("secret body"), std::string::npos);
}

}  // namespace
}  // namespace zm::scheduler
