// zm::tlspolicy::Refresher and NeedsRefresh: when a cached MTA-STS policy
// is fetched again, and that the fetch runs apart from the caller.
#include "node/tlspolicy/refresher.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <vector>

namespace zm::tlspolicy {
namespace {

TEST(NeedsRefresh, NewIdOrHalfTheMaxAge) {
  StsPolicy p;
  p.id = "1";
  p.fetched = 1000;
  p.max_age = 86400;
  EXPECT_FALSE(NeedsRefresh(p, "1", 1000));
  EXPECT_FALSE(NeedsRefresh(p, "1", 1000 + 43199));
  EXPECT_TRUE(NeedsRefresh(p, "1", 1000 + 43200));
  EXPECT_TRUE(NeedsRefresh(p, "2", 1000));
  // Without a record the cached policy holds (RFC 8461 section 5.1).
  EXPECT_FALSE(NeedsRefresh(p, "", 1000 + 80000));
}

// A fetch that waits until the test opens the gate.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  std::vector<std::string> started;
  void Wait(const std::string& domain) {
    std::unique_lock<std::mutex> lock(mu);
    started.push_back(domain);
    cv.notify_all();
    cv.wait(lock, [this] { return open; });
  }
  void WaitStarted(size_t n) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return started.size() >= n; });
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu);
    open = true;
    cv.notify_all();
  }
};

TEST(Refresher, RequestDoesNotWaitForTheFetch) {
  Gate gate;
  Refresher r(
      [&](const std::string& d) {
        gate.Wait(d);
        return true;
      },
      std::chrono::seconds(0));
  // Returns while the fetch is held.
  EXPECT_TRUE(r.Request("a.test"));
  gate.WaitStarted(1);
  // Running already: not queued twice; another domain waits its turn.
  EXPECT_FALSE(r.Request("a.test"));
  EXPECT_TRUE(r.Request("b.test"));
  EXPECT_FALSE(r.Request("b.test"));
  gate.Open();
  r.WaitIdle();
  EXPECT_EQ(gate.started, (std::vector<std::string>{"a.test", "b.test"}));
}

TEST(Refresher, AFailedFetchIsNotRetriedWithinRetryAfter) {
  int fetches = 0;
  Refresher r(
      [&](const std::string& d) {
        ++fetches;
        return d != "down.test";
      },
      std::chrono::hours(1));
  EXPECT_TRUE(r.Request("down.test"));
  r.WaitIdle();
  EXPECT_FALSE(r.Request("down.test"));
  // A fetched one may be asked for again (its cache says when).
  EXPECT_TRUE(r.Request("up.test"));
  r.WaitIdle();
  EXPECT_TRUE(r.Request("up.test"));
  r.WaitIdle();
  EXPECT_EQ(fetches, 3);
}

TEST(Refresher, QueueIsBoundedAndDroppedAtExit) {
  Gate gate;
  int fetches = 0;
  {
    Refresher r(
        [&](const std::string& d) {
          ++fetches;
          gate.Wait(d);
          return true;
        },
        std::chrono::seconds(0), 2);
    EXPECT_TRUE(r.Request("running.test"));
    gate.WaitStarted(1);
    EXPECT_TRUE(r.Request("q1.test"));
    EXPECT_TRUE(r.Request("q2.test"));
    EXPECT_FALSE(r.Request("q3.test"));  // full
    gate.Open();
    // The destructor drops what has not started (it may have, by now).
  }
  EXPECT_GE(fetches, 1);
  EXPECT_LE(fetches, 3);
}

}  // namespace
}  // namespace zm::tlspolicy
