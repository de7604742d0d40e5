#include "node/zmailer/restart_policy.h"

#include <gtest/gtest.h>

#include <vector>

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

TEST(RestartPolicyTest, TenSecondsAfterReadinessResetsTheDelay) {
  RestartPolicy p;
  p.OnExit(kKilled, true, 100);
  p.OnExit(kKilled, true, 100);
  EXPECT_EQ(p.OnExit(kKilled, true, 100).delay_ms, 4000);
  EXPECT_EQ(p.consecutive(), 3);
  // A daemon that worked for 10 s and then crashed is back after 1 s.
  EXPECT_EQ(p.OnExit(kKilled, true, 10000).delay_ms, 1000);
  EXPECT_EQ(p.consecutive(), 1);
  EXPECT_EQ(p.OnExit(kKilled, true, 9999).delay_ms, 2000);
  EXPECT_EQ(p.consecutive(), 2);
}

TEST(RestartPolicyTest, ALongRunThatNeverBecameReadyKeepsBackingOff) {
  RestartPolicy p;
  EXPECT_EQ(p.OnExit(kKilled, false, 100).delay_ms, 1000);
  EXPECT_EQ(p.OnExit(kKilled, false, 120000).delay_ms, 2000);
  EXPECT_EQ(p.OnExit(kKilled, false, 120000).delay_ms, 4000);
  EXPECT_EQ(p.consecutive(), 3);
}

TEST(RestartPolicyTest, OptionsSetTheFirstDelay) {
  RestartPolicyOptions o;
  o.initial_delay_ms = 50;
  RestartPolicy p(o);
  std::vector<int64_t> delays;
  for (int i = 0; i < 4; ++i) delays.push_back(p.OnExit(1, false, 5).delay_ms);
  EXPECT_EQ(delays, (std::vector<int64_t>{50, 100, 200, 400}));
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
