// zm::smtpserver::FleetLink: the smtpserver's link to the node's cluster
// agent (docs/cluster.md, "Fleet rate limits, policy and ETRN").
//
// Nothing in the SMTP path waits on it. A background thread reports this
// node's rate-tracker slots of the keys that changed (TakeLocalChanges: no
// scan of every key) to the agent in batches (every ~200 ms), and
// two streams keep the process's memory current: peers' rate slots are
// merged into the RateTracker (so the existing limits count local + peers:
// fleet-wide limits, decided in process), and the fleet policy overlay is
// kept as a PolicyOverlay the checks consult before the static policy.
//
//   auto client = cluster::ClusterClient::ForNode(node);   // needs cluster.conf
//   FleetOptions opts{.node_id = "mx1", .window = window};
//   auto fleet = FleetLink::Start(std::move(*client), *rates, &log, opts);
//   if (auto e = fleet->overlay().ForIp(ip, now_ms)) ...;
//   fleet->OverLimit("ip4:192.0.2.7", "over 100 mail per window");
//   auto etrn = fleet->Etrn("example.com");     // blocks up to etrn_wait_ms
//
// If the agent is down the link keeps retrying (streams with backoff, a
// full resend of the window after a failure or a reconnect) and the
// smtpserver goes on with what it last knew. Thread-safe. The RateTracker
// and the Logger must outlive the FleetLink.
#ifndef ZM_SMTPSERVER_SMTPSERVER_FLEET_H_
#define ZM_SMTPSERVER_SMTPSERVER_FLEET_H_

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "cluster/client/cluster_client.h"
#include "cluster/client/policy_overlay.h"
#include "node/ratetrack/rate_tracker.h"

namespace zm {
class Logger;
}

namespace zm::smtpserver {

namespace v1 = ::zmnode::cluster::v1;

struct FleetOptions {
  std::string node_id;            // this node's, stamped on reported slots
  ratetrack::RateWindow window;   // what WatchRates asks for
  int report_interval_ms = 200;   // batches of local slots to the agent
  size_t report_batch = 2000;     // slots per ReportRates call
  // PARAM fleet-defer-over-limit N: a source over its limit is published
  // as a fleet DEFER entry for N seconds (0: off).
  int defer_over_limit_sec = 0;
  // PARAM etrn-cluster-wait N: how long SMTP ETRN waits for the nodes.
  int etrn_wait_ms = 5000;
  // The node is in a fleet (gossip-listen); false for a solo agent, whose
  // node keeps its own SMTP ETRN (in_fleet()).
  bool in_fleet = true;
};

// What a cluster-wide ETRN got: each node's answer and who has not
// answered yet (they act when they see the request).
struct FleetEtrn {
  std::string request_id;
  std::vector<v1::EtrnResult> results;
  std::vector<std::string> pending;
};

class FleetLink {
 public:
  static std::unique_ptr<FleetLink> Start(
      std::unique_ptr<cluster::ClusterClient> client,
      ratetrack::RateTracker& rates, Logger* log, FleetOptions opts);
  ~FleetLink();  // one last report, then stops the streams

  const cluster::PolicyOverlay& overlay() const { return overlay_; }

  // A source refused for its rate: with defer_over_limit_sec set, queues
  // a fleet DEFER entry for it (published by the background thread; once
  // per source and half TTL). User keys are not published.
  void OverLimit(std::string_view rate_key, std::string_view why);

  // The limit the policy put on a source when it was checked (negative:
  // refused for good), sent with the next report when it changed, so the
  // agent's TopSources can show limit, class and state. Bounded.
  void NoteLimit(std::string_view rate_key, std::string_view rate_class,
                 int64_t messages, int64_t recipients);

  // Starts a cluster-wide ETRN and waits up to etrn_wait_ms for the
  // nodes' answers. Unavailable when the agent is down.
  absl::StatusOr<FleetEtrn> Etrn(std::string_view domain);

  bool in_fleet() const { return opts_.in_fleet; }

  // For tests and the log.
  uint64_t reports() const { return reports_.load(); }
  bool rates_connected() const { return rate_sub_ && rate_sub_->connected(); }
  bool policy_connected() const {
    return policy_sub_ && policy_sub_->connected();
  }

 private:
  FleetLink(std::unique_ptr<cluster::ClusterClient> client,
            ratetrack::RateTracker& rates, Logger* log, FleetOptions opts);
  void Loop();
  void ReportOnce(bool final);
  void PublishPending();
  void MergePeers(const v1::RateUpdate& u);
  int64_t WindowSeconds() const;

  std::unique_ptr<cluster::ClusterClient> client_;
  ratetrack::RateTracker& rates_;
  Logger* log_;
  const FleetOptions opts_;
  cluster::PolicyOverlay overlay_;
  std::atomic<bool> resend_all_{true};
  std::atomic<uint64_t> reports_{0};
  bool agent_ok_ = true;    // on the loop thread: for one log line a change

  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::pair<std::string, std::string>> to_publish_
      ABSL_GUARDED_BY(mu_);  // (subject, reason)
  std::map<std::string, int64_t> published_ ABSL_GUARDED_BY(mu_);  // subject -> unix s
  // Limits as last noted per key (bounded), and those not yet reported.
  std::map<std::string, v1::SourceLimit, std::less<>> limits_
      ABSL_GUARDED_BY(mu_);
  std::vector<v1::SourceLimit> limits_pending_ ABSL_GUARDED_BY(mu_);

  std::unique_ptr<cluster::Subscription> rate_sub_;
  std::unique_ptr<cluster::Subscription> policy_sub_;
  std::thread thread_;
};

}  // namespace zm::smtpserver

#endif  // ZM_SMTPSERVER_SMTPSERVER_FLEET_H_
