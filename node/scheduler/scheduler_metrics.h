// The scheduler's exported counters and gauges (node/metrics,
// docs/metrics.md): recipient outcomes by channel, the queue's size and
// age, transport agent processes.
//
//   SchedulerMetrics m(node);                 // run/metrics/scheduler.stats
//   m.Outcome("smtp", "delivered");
//   m.Queue({.messages = 3, ...});
#ifndef ZM_SCHEDULER_SCHEDULER_METRICS_H_
#define ZM_SCHEDULER_SCHEDULER_METRICS_H_

#include <cstdint>
#include <memory>
#include <string_view>

#include "node/common/node_dir.h"
#include "node/metrics/metrics.h"
#include "node/metrics/metrics_catalog.h"

namespace zm::scheduler {

struct QueueFigures {
  int64_t messages = 0;
  int64_t recipients = 0;  // not yet done
  int64_t threads = 0;
  int64_t oldest_age_s = 0;
  int64_t agents = 0;  // transport agent processes
};

class SchedulerMetrics {
 public:
  explicit SchedulerMetrics(const NodeDir& node)
      : registry_(
            metrics::Registry::Open(node.run() + "/metrics", "scheduler")) {}

  // `result`: delivered, deferred, bounced or expired.
  void Outcome(std::string_view channel, std::string_view result) {
    registry_
        ->GetCounter(metrics::kSchedulerRecipients,
                     {{"channel", channel}, {"result", result}})
        .Inc();
  }
  void Queue(const QueueFigures& q) {
    messages_.Set(q.messages);
    recipients_.Set(q.recipients);
    threads_.Set(q.threads);
    oldest_.Set(q.oldest_age_s);
    agents_.Set(q.agents);
  }

 private:
  std::unique_ptr<metrics::Registry> registry_;
  metrics::Gauge messages_ = registry_->GetGauge(metrics::kQueueMessages);
  metrics::Gauge recipients_ = registry_->GetGauge(metrics::kQueueRecipients);
  metrics::Gauge threads_ = registry_->GetGauge(metrics::kQueueThreads);
  metrics::Gauge oldest_ = registry_->GetGauge(metrics::kQueueOldestAge);
  metrics::Gauge agents_ = registry_->GetGauge(metrics::kSchedulerTaProcesses);
};

}  // namespace zm::scheduler

#endif  // ZM_SCHEDULER_SCHEDULER_METRICS_H_
