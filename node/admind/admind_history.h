// A per-minute ring of the six counters the dashboard charts: messages
// received, recipients delivered, deferred, bounced, and SMTP commands
// refused by policy and by rate limit.
//
//   History h(180);                           // keep three hours
//   h.Record(time(nullptr), CurrentTotals(samples));  // every few seconds
//   auto series = h.Last(60, now);            // 60 per-minute deltas each
//
// Record() takes the programs' running totals; a total that goes down (the
// program restarted) counts from zero again. Thread-safe.
#ifndef ZM_ADMIND_ADMIND_HISTORY_H_
#define ZM_ADMIND_ADMIND_HISTORY_H_

#include <array>
#include <cstdint>
#include <deque>
#include <optional>
#include <string_view>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "node/metrics/metrics.h"

namespace zm::admind {

inline constexpr size_t kHistorySeries = 6;
// JSON names, in order.
inline constexpr std::array<std::string_view, kHistorySeries> kHistoryNames = {
    "received", "delivered",       "deferred",
    "bounced",  "rejected_policy", "rejected_rate"};

using Totals = std::array<int64_t, kHistorySeries>;

// The six running totals from the node's metric samples.
Totals CurrentTotals(const std::vector<metrics::Sample>& samples);

struct HistorySeries {
  int64_t first_minute = 0;  // unix seconds of the oldest minute
  // series[i][m]: counter i in minute first_minute + 60*m.
  std::array<std::vector<int64_t>, kHistorySeries> series;
};

class History {
 public:
  explicit History(size_t keep_minutes) : keep_(keep_minutes) {}

  void Record(int64_t now_unix, const Totals& totals);
  // The last `minutes` minutes up to and including the one holding `now`.
  HistorySeries Last(size_t minutes, int64_t now_unix) const;

 private:
  struct Minute {
    int64_t start = 0;
    Totals counts{};
  };
  const size_t keep_;
  mutable absl::Mutex mu_;
  std::optional<Totals> last_ ABSL_GUARDED_BY(mu_);
  std::deque<Minute> ring_ ABSL_GUARDED_BY(mu_);
};

}  // namespace zm::admind

#endif  // ZM_ADMIND_ADMIND_HISTORY_H_
