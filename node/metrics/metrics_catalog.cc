#include "node/metrics/metrics_catalog.h"

#include <array>

namespace zm::metrics {
namespace {

using T = MetricType;

constexpr std::array kCatalog = {
    // smtpserver
    MetricInfo{kSmtpConnections, T::kCounter,
               "TCP connections accepted by smtpserver, by listener."},
    MetricInfo{kSmtpSessionsActive, T::kGauge, "SMTP sessions open right now."},
    MetricInfo{kSmtpMessagesReceived, T::kCounter,
               "Messages accepted into the spool over SMTP."},
    MetricInfo{kSmtpRecipientsReceived, T::kCounter,
               "Recipients of the messages accepted over SMTP."},
    MetricInfo{kSmtpBytesReceived, T::kCounter,
               "Bytes of message content accepted over SMTP."},
    MetricInfo{kSmtpPolicyRejections, T::kCounter,
               "SMTP commands refused by policy, by reason."},
    MetricInfo{kSmtpRateLimitRejections, T::kCounter,
               "SMTP commands refused or deferred by a rate limit, by "
               "reason."},
    // scheduler
    MetricInfo{kSchedulerRecipients, T::kCounter,
               "Recipient delivery outcomes, by channel and result "
               "(delivered, deferred, bounced, expired)."},
    MetricInfo{kSchedulerTaProcesses, T::kGauge,
               "Transport agent processes running."},
    MetricInfo{kQueueMessages, T::kGauge, "Messages in the queue."},
    MetricInfo{kQueueRecipients, T::kGauge, "Recipients waiting for delivery."},
    MetricInfo{kQueueThreads, T::kGauge,
               "Delivery threads (channel and host pairs) in the queue."},
    MetricInfo{kQueueOldestAge, T::kGauge,
               "Age of the oldest message in the queue, in seconds."},
    // the supervisor
    MetricInfo{kRestarts, T::kCounter,
               "Restarts of a program by the supervisor, by program."},
    // router
    MetricInfo{kRouterMessages, T::kCounter,
               "Messages the router processed, by result."},
    MetricInfo{kDnsLookups, T::kCounter, "DNS lookups made, by type."},
    MetricInfo{kDnsFailures, T::kCounter,
               "DNS lookups that failed (not NXDOMAIN), by type."},
    // computed by admind
    MetricInfo{"zmnode_up", T::kGauge,
               "1 if the program runs (per its pid file), by program."},
    MetricInfo{"zmnode_ready", T::kGauge,
               "1 if the node is ready for traffic (as /readyz)."},
    MetricInfo{"zmnode_draining", T::kGauge, "1 while the node drains."},
    MetricInfo{"zmnode_process_start_time_seconds", T::kGauge,
               "Start time of the running program, unix seconds."},
    MetricInfo{"zmnode_spool_free_bytes", T::kGauge,
               "Free space on the spool's file system, in bytes."},
    MetricInfo{"zmnode_gossip_members", T::kGauge,
               "Fleet members known to this node's cluster agent, by state."},
    MetricInfo{"zmnode_gossip_sent_bytes_total", T::kCounter,
               "Gossip bytes sent by this node's cluster agent."},
    MetricInfo{"zmnode_gossip_received_bytes_total", T::kCounter,
               "Gossip bytes received by this node's cluster agent."},
    MetricInfo{"zmnode_gossip_merges_total", T::kCounter,
               "CRDT records merged from peers."},
    MetricInfo{"zmnode_gossip_propagation_delay_seconds", T::kGauge,
               "Mean delay between a record's origin and its merge here."},
    // clusterd (run/metrics/clusterd.stats)
    MetricInfo{"zmnode_gossip_probes_total", T::kCounter,
               "SWIM probes this node's cluster agent sent."},
    MetricInfo{"zmnode_gossip_probe_acks_total", T::kCounter,
               "Probes answered, directly or through another member."},
    MetricInfo{"zmnode_gossip_probe_failures_total", T::kCounter,
               "Probes left unanswered (the member became suspect)."},
    MetricInfo{"zmnode_gossip_indirect_probes_total", T::kCounter,
               "Probes that asked other members to probe for us."},
    MetricInfo{"zmnode_gossip_pings_answered_total", T::kCounter,
               "Probes from peers this node answered."},
    MetricInfo{"zmnode_gossip_member_transitions_total", T::kCounter,
               "Members this node saw become suspect or dead, by state."},
    MetricInfo{"zmnode_gossip_refutations_total", T::kCounter,
               "Rumours of this node's failure it refuted."},
    MetricInfo{"zmnode_gossip_full_syncs_total", T::kCounter,
               "Full membership syncs with a random member started."},
    MetricInfo{"zmnode_gossip_full_sync_learnt_total", T::kCounter,
               "Members first learnt from a full sync."},
    MetricInfo{"zmnode_gossip_exchanges_total", T::kCounter,
               "Anti-entropy exchanges completed (as caller)."},
    MetricInfo{"zmnode_gossip_pushes_total", T::kCounter,
               "Anti-entropy pushes completed (as caller)."},
    MetricInfo{"zmnode_gossip_rounds_total", T::kCounter,
               "Anti-entropy rounds that started sessions with peers."},
    MetricInfo{"zmnode_gossip_hash_mismatches_total", T::kCounter,
               "Probe answers whose state hash differed from ours."},
    MetricInfo{"zmnode_gossip_deltas_gzipped_total", T::kCounter,
               "State deltas sent gzip-compressed."},
    MetricInfo{"zmnode_gossip_idle", T::kGauge,
               "1 while the agent gossips at its idle pace (no news)."},
};

}  // namespace

std::span<const MetricInfo> Catalog() { return kCatalog; }

const MetricInfo* FindMetric(std::string_view name) {
  for (const MetricInfo& m : kCatalog) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

}  // namespace zm::metrics
