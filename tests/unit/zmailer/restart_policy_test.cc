#include "node/zmailer/restart_policy.h"

#include <gtest/gtest.h>

namespace zm::zmailer {
namespace {

constexpr int kKilled = -1;

TEST(RestartPolicyTest, DelaysDoubleUpToOneMinute) {
  RestartPolicy p;
  std::vector<int64_t> delays;
  for (int i = 0; i < 9; ++i) {
    auto d = p.OnExit(kKilled, /*became_ready=*/true, /*uptime_ms=*/5000);
    ASSERT_FALSE(d.give_up);
    delays.push_back(d.delay_ms);
  }
  EXPECT_EQ(delays, (std::vector<int64_t>{1000, 2000, 4000, 8000, 16000, 32000,
                                          60000, 60000, 60000}));
}

TEST(RestartPolicyTest, SixtySecondsOfUptimeResetsTheDelay) {
  RestartPolicy p;
  p.OnExit(kKilled, true, 100);
  p.OnExit(kKilled, true, 100);
  EXPECT_EQ(p.OnExit(kKilled, true, 100).delay_ms, 4000);
  EXPECT_EQ(p.OnExit(kKilled, true, 60000).delay_ms, 1000);
  EXPECT_EQ(p.OnExit(kKilled, true, 59999).delay_ms, 2000);
}

TEST(RestartPolicyTest, GivesUpAfterMoreThanFiveConfigErrorsInARow) {
  RestartPolicy p;
  for (int i = 1; i <= 5; ++i) {
    auto d = p.OnExit(1, /*became_ready=*/false, 50);
    EXPECT_FALSE(d.give_up) << "failure " << i;
  }
  EXPECT_TRUE(p.OnExit(1, false, 50).give_up);
}

TEST(RestartPolicyTest, OtherExitsBreakTheRun) {
  RestartPolicy p;
  for (int i = 0; i < 5; ++i) p.OnExit(1, false, 50);
  // A crash (not a config error) in between: the count starts again.
  EXPECT_FALSE(p.OnExit(kKilled, true, 50).give_up);
  EXPECT_EQ(p.config_failures(), 0);
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(p.OnExit(1, false, 50).give_up);
  EXPECT_TRUE(p.OnExit(1, false, 50).give_up);
}

TEST(RestartPolicyTest, ExitOneAfterALongRunIsNotAConfigError) {
  RestartPolicy p;
  for (int i = 0; i < 10; ++i) {
    EXPECT_FALSE(p.OnExit(1, /*became_ready=*/true, 20000).give_up);
  }
  // Exit 2 right at start is a crash, not a config error.
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(p.OnExit(2, false, 10).give_up);
}

TEST(RestartPolicyTest, ResetForgetsHistory) {
  RestartPolicy p;
  for (int i = 0; i < 6; ++i) p.OnExit(1, false, 10);
  p.Reset();
  auto d = p.OnExit(1, false, 10);
  EXPECT_FALSE(d.give_up);
  EXPECT_EQ(d.delay_ms, 1000);
}

}  // namespace
}  // namespace zm::zmailer
