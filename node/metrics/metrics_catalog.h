// zm::metrics catalog: the name, type and help text of every metric a node
// exports (docs/metrics.md lists the same). Programs register series under
// these names; admind takes HELP and TYPE lines from here.
//
//   reg->GetCounter(zm::metrics::kSmtpConnections, {{"listener", "smtp"}});
//   const MetricInfo* info = zm::metrics::FindMetric(name);
#ifndef ZM_METRICS_METRICS_CATALOG_H_
#define ZM_METRICS_METRICS_CATALOG_H_

#include <span>
#include <string_view>

namespace zm::metrics {

// smtpserver
inline constexpr std::string_view kSmtpConnections =
    "zmnode_smtp_connections_total";
inline constexpr std::string_view kSmtpSessionsActive =
    "zmnode_smtp_sessions_active";
inline constexpr std::string_view kSmtpMessagesReceived =
    "zmnode_smtp_messages_received_total";
inline constexpr std::string_view kSmtpRecipientsReceived =
    "zmnode_smtp_recipients_received_total";
inline constexpr std::string_view kSmtpBytesReceived =
    "zmnode_smtp_received_bytes_total";
inline constexpr std::string_view kSmtpPolicyRejections =
    "zmnode_smtp_policy_rejections_total";
inline constexpr std::string_view kSmtpRateLimitRejections =
    "zmnode_smtp_rate_limit_rejections_total";
// scheduler
inline constexpr std::string_view kSchedulerRecipients =
    "zmnode_scheduler_recipients_total";
inline constexpr std::string_view kSchedulerTaProcesses =
    "zmnode_scheduler_transport_agents";
inline constexpr std::string_view kQueueMessages = "zmnode_queue_messages";
inline constexpr std::string_view kQueueRecipients = "zmnode_queue_recipients";
inline constexpr std::string_view kQueueThreads = "zmnode_queue_threads";
inline constexpr std::string_view kQueueOldestAge =
    "zmnode_queue_oldest_age_seconds";
// the supervisor (zmailer)
inline constexpr std::string_view kRestarts = "zmnode_restarts_total";
// router
inline constexpr std::string_view kRouterMessages =
    "zmnode_router_messages_total";
inline constexpr std::string_view kDnsLookups = "zmnode_dns_lookups_total";
inline constexpr std::string_view kDnsFailures = "zmnode_dns_failures_total";

enum class MetricType { kCounter, kGauge };

struct MetricInfo {
  std::string_view name;
  MetricType type;
  std::string_view help;
};

// Every metric of the catalog, including those admind computes itself
// (process state, spool space, gossip figures).
std::span<const MetricInfo> Catalog();

// nullptr for a name not in the catalog.
const MetricInfo* FindMetric(std::string_view name);

}  // namespace zm::metrics

#endif  // ZM_METRICS_METRICS_CATALOG_H_
