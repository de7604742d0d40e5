// The JSON API under /api/v1/ (docs/admin-api.md), independent of HTTP:
// the server module maps requests to these calls, tests call them direct.
//
//   Api api(node, conf, &history, cluster_client_or_null);
//   ApiReply r = api.Get("members", {});         // r.status, r.body (JSON)
//   r = api.Post("policy", R"({"key":"192.0.2.7","action":"reject"})");
//
// Node-local parts come from the node (pid files, metrics files, the
// scheduler's admin socket); fleet parts from the node's cluster agent
// (run/cluster.sock), which a node alone may run too (solo). Without an
// agent the fleet is this node: members lists itself, queues and history
// its own figures, ETRN goes to the local scheduler, and the policy
// overlay (kept by the agent) answers 503.
#ifndef ZM_ADMIND_ADMIND_API_H_
#define ZM_ADMIND_ADMIND_API_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "nlohmann/json.hpp"
#include "node/admind/admind_config.h"
#include "node/admind/admind_history.h"
#include "node/common/node_dir.h"
#include "node/metrics/metrics.h"

namespace zm::cluster {
class ClusterClient;
}

namespace zm::admind {

struct ApiReply {
  int status = 200;
  std::string body;  // JSON
};

using Params = std::map<std::string, std::string>;

class Api {
 public:
  // `fleet`: the node gossips with peers (cluster.conf gossip-listen).
  // `client`: its cluster agent (also run by a node alone, solo); null
  // when the node runs none.
  Api(NodeDir node, AdminConfig conf, std::string node_id, History* history,
      bool fleet, std::unique_ptr<cluster::ClusterClient> client);
  ~Api();

  // `what` is the path after /api/v1/ ("node", "rates/top", ...).
  ApiReply Get(std::string_view what, const Params& params);
  ApiReply Post(std::string_view what, std::string_view body);
  ApiReply Delete(std::string_view what, const Params& params);

  // The JSON documents of the GETs (also the SSE events' data).
  nlohmann::json Node();
  nlohmann::json Members();
  nlohmann::json RatesTop(const Params& params);
  nlohmann::json Queues();
  nlohmann::json HistoryJson(size_t minutes);
  nlohmann::json Etrn(const std::string& id);
  // The last ETRN started through this admind ({} if none).
  std::string LastEtrnId();

  const std::string& node_id() const { return node_id_; }
  bool clustered() const { return fleet_; }

  // Called every few seconds by the main loop: in a fleet, publishes this
  // node's status (queue summary, history) every 10 s.
  void Tick();

  // Gossip figures of the node's cluster agent for /metrics (empty
  // without a cluster or before the agent reports them).
  std::vector<metrics::Sample> FleetSamples();

  // This node's queue summary (metrics gauges + the scheduler's threads).
  nlohmann::json LocalQueue();

 private:
  ApiReply Policy();
  ApiReply PolicyAdd(const nlohmann::json& body);
  ApiReply PolicyDelete(const Params& params);
  ApiReply StartEtrn(const nlohmann::json& body);
  ApiReply EtrnReply(const std::string& id);
  // rates/top from the agent's FleetRates (before TopSources existed).
  nlohmann::json RatesFromFleetRates(const Params& params);
  // This node's status for the fleet (PublishNodeStatus).
  void PublishStatus();

  const NodeDir node_;
  const AdminConfig conf_;
  const std::string node_id_;
  std::string hostname_;
  const int64_t started_unix_;
  History* const history_;
  const bool fleet_;
  std::unique_ptr<cluster::ClusterClient> client_;

  absl::Mutex mu_;
  std::string last_etrn_ ABSL_GUARDED_BY(mu_);
  // ETRN runs of a node without a cluster: id -> reply JSON.
  std::map<std::string, nlohmann::json> local_etrn_ ABSL_GUARDED_BY(mu_);
  uint64_t etrn_seq_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t last_publish_ ABSL_GUARDED_BY(mu_) = 0;
};

// An error reply: {"error": "one line"}.
ApiReply ErrorReply(int status, std::string_view message);

}  // namespace zm::admind

#endif  // ZM_ADMIND_ADMIND_API_H_
