// The smtpserver's exported counters (node/metrics, docs/metrics.md):
// made once per process, bumped with one line where things happen.
//
//   SmtpMetrics m(*registry);
//   m.connections[static_cast<int>(listener)].Inc();
//   m.PolicyRejection("rcpt");
#ifndef ZM_SMTPSERVER_SMTPSERVER_METRICS_H_
#define ZM_SMTPSERVER_SMTPSERVER_METRICS_H_

#include <string_view>

#include "node/metrics/metrics.h"
#include "node/metrics/metrics_catalog.h"
#include "node/smtp/check.h"

namespace zm::smtpserver {

struct SmtpMetrics {
  explicit SmtpMetrics(metrics::Registry& r) : registry(r) {
    const char* names[] = {"smtp", "submission", "smtps", "local"};
    for (int i = 0; i < 4; ++i) {
      connections[i] =
          r.GetCounter(metrics::kSmtpConnections, {{"listener", names[i]}});
    }
  }
  // Refusals by policy (the check that refused: connect, helo, mail, rcpt,
  // ...) and by rate limit (what went over: mail, recipients, auth).
  void PolicyRejection(std::string_view reason) const {
    registry.GetCounter(metrics::kSmtpPolicyRejections, {{"reason", reason}})
        .Inc();
  }
  void RateRejection(std::string_view reason) const {
    registry.GetCounter(metrics::kSmtpRateLimitRejections, {{"reason", reason}})
        .Inc();
  }

  void Received(size_t rcpts, uint64_t size) const {
    messages.Inc();
    recipients.Inc(static_cast<int64_t>(rcpts));
    bytes.Inc(static_cast<int64_t>(size));
  }

  metrics::Registry& registry;
  metrics::Counter connections[4];  // by smtp::Listener
  metrics::Gauge sessions = registry.GetGauge(metrics::kSmtpSessionsActive);
  metrics::Counter messages =
      registry.GetCounter(metrics::kSmtpMessagesReceived);
  metrics::Counter recipients =
      registry.GetCounter(metrics::kSmtpRecipientsReceived);
  metrics::Counter bytes = registry.GetCounter(metrics::kSmtpBytesReceived);
};

}  // namespace zm::smtpserver

#endif  // ZM_SMTPSERVER_SMTPSERVER_METRICS_H_
