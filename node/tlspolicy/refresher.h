// zm::tlspolicy::Refresher: fetches MTA-STS policies in the background, so
// that a delivery never waits for one while a cached policy still holds
// (RFC 8461 section 10.2: refresh a policy before it expires, and fetch a
// new one when the `_mta-sts` id changes).
//
//   Refresher r([&](const std::string& domain) { /* fetch, cache */
//                                               return fetched; });
//   if (NeedsRefresh(*cached, id, now)) r.Request(domain);  // not waiting
//
// One worker thread runs the fetches one after the other. A domain is
// queued once however often it is asked for, and not again within
// `retry_after` of a failed fetch (a failing policy host is not hammered);
// at most `max_queued` domains wait. The destructor lets the running fetch
// finish (its own timeout bounds it) and drops the queued ones.
// Thread-safe.
#ifndef ZM_TLSPOLICY_REFRESHER_H_
#define ZM_TLSPOLICY_REFRESHER_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "node/tlspolicy/mtasts.h"

namespace zm::tlspolicy {

// A cached policy is refreshed when it has lived this share of max_age.
inline constexpr int kStsRefreshPercent = 50;

// Whether `cached` (not expired) should be fetched again at `now`: the
// domain's TXT id is `id` (non-empty) and differs from the cached one, or
// the policy has lived kStsRefreshPercent of its max_age.
bool NeedsRefresh(const StsPolicy& cached, const std::string& id,
                  int64_t now);

class Refresher {
 public:
  // True when the policy was fetched (and cached).
  using Fetch = std::function<bool(const std::string& domain)>;
  explicit Refresher(Fetch fetch,
                     std::chrono::seconds retry_after = std::chrono::minutes(5),
                     size_t max_queued = 64);
  ~Refresher();
  Refresher(const Refresher&) = delete;
  Refresher& operator=(const Refresher&) = delete;

  // Queues a fetch of `domain`; false when it is queued or running
  // already, failed within retry_after, or the queue is full.
  bool Request(const std::string& domain);
  // Blocks until nothing is queued or running (tests).
  void WaitIdle();

 private:
  void Run();

  const Fetch fetch_;
  const std::chrono::seconds retry_after_;
  const size_t max_queued_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  std::string running_;
  bool stop_ = false;
  // When each domain's last failed fetch began.
  std::map<std::string, std::chrono::steady_clock::time_point> failed_;
  std::thread thread_;
};

}  // namespace zm::tlspolicy

#endif  // ZM_TLSPOLICY_REFRESHER_H_
