#include "node/admind/admind_history.h"

#include "node/admind/admind_metrics.h"
#include "node/metrics/metrics_catalog.h"

namespace zm::admind {

Totals CurrentTotals(const std::vector<metrics::Sample>& samples) {
  return Totals{
      SumOf(samples, metrics::kSmtpMessagesReceived),
      SumOf(samples, metrics::kSchedulerRecipients, "result=\"delivered\""),
      SumOf(samples, metrics::kSchedulerRecipients, "result=\"deferred\""),
      SumOf(samples, metrics::kSchedulerRecipients, "result=\"bounced\""),
      SumOf(samples, metrics::kSmtpPolicyRejections),
      SumOf(samples, metrics::kSmtpRateLimitRejections),
  };
}

void History::Record(int64_t now_unix, const Totals& totals) {
  int64_t minute = now_unix - now_unix % 60;
  absl::MutexLock lock(&mu_);
  if (ring_.empty() || ring_.back().start < minute) {
    ring_.push_back(Minute{minute, {}});
    while (ring_.size() > keep_) ring_.pop_front();
  }
  if (last_) {
    for (size_t i = 0; i < kHistorySeries; ++i) {
      int64_t d = totals[i] - (*last_)[i];
      // A total that went down: its program restarted and counts anew.
      ring_.back().counts[i] += d >= 0 ? d : totals[i];
    }
  }
  last_ = totals;
}

HistorySeries History::Last(size_t minutes, int64_t now_unix) const {
  HistorySeries out;
  int64_t current = now_unix - now_unix % 60;
  out.first_minute = current - 60 * static_cast<int64_t>(minutes - 1);
  for (auto& s : out.series) s.assign(minutes, 0);
  absl::MutexLock lock(&mu_);
  for (const Minute& m : ring_) {
    if (m.start < out.first_minute || m.start > current) continue;
    size_t idx = static_cast<size_t>((m.start - out.first_minute) / 60);
    for (size_t i = 0; i < kHistorySeries; ++i) {
      out.series[i][idx] = m.counts[i];
    }
  }
  return out;
}

}  // namespace zm::admind
