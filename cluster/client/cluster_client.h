// zm::cluster::ClusterClient: how the node's programs talk to the node's
// cluster agent (clusterd) over the local service (local.proto) on the
// UNIX socket run/cluster.sock.
//
// Every unary call has a deadline and fails fast with a clear Status when
// the agent is absent (Unavailable, "cluster agent not running ...") or
// the node is not in a fleet (FailedPrecondition from ForNode): nothing
// ever waits for an agent that is not there. The two streams (WatchRates,
// WatchPolicy) run on their own thread each, reconnecting with exponential
// backoff for as long as the Subscription lives.
//
//   auto client = ClusterClient::ForNode(node);          // needs cluster.conf
//   if (!client.ok()) ...;                               // no agent here
//   auto members = (*client)->Members();
//   auto sub = (*client)->WatchPolicy(
//       [&](const v1::PolicyUpdate& u) { overlay.Apply(u); });
//
// The socket is guarded by file permissions, so the channel is plain
// (insecure credentials). Thread-safe: calls may come from any thread.
// The callbacks of a Subscription run on its thread, one at a time; the
// Subscription's destructor cancels the stream and joins that thread, so
// the callbacks' captures must outlive it.
#ifndef ZM_CLUSTER_CLIENT_CLUSTER_CLIENT_H_
#define ZM_CLUSTER_CLIENT_CLUSTER_CLIENT_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "node/common/node_dir.h"
#include "zmnode/cluster/v1/local.grpc.pb.h"

namespace grpc {
class Channel;
class ClientContext;
}  // namespace grpc

namespace zm::cluster {

namespace v1 = ::zmnode::cluster::v1;

struct ClientOptions {
  std::string socket_path;      // absolute; "" = run/cluster.sock of the node
  int call_timeout_ms = 2000;   // unary deadline (EtrnStatus adds its wait)
  int backoff_initial_ms = 100;  // streams: first reconnect delay
  int backoff_max_ms = 5000;     // streams: and its cap (doubling)
};

// The local service's socket of `node`: cluster.conf's local-socket, else
// run/cluster.sock.
std::string SocketPath(const NodeDir& node);
// Whether `node` is a fleet member: its etc/cluster.conf has a
// gossip-listen line (without one, the file only names the node).
bool HasCluster(const NodeDir& node);
// Whether `node` runs a cluster agent: it has an etc/cluster.conf. A node
// in no fleet runs it solo (local service only, no peers), so its own
// rates, policy overlay and status take the same path (docs/cluster.md).
bool HasAgent(const NodeDir& node);

// A running stream (see ClusterClient::WatchRates/WatchPolicy).
class Subscription {
 public:
  ~Subscription();  // cancels the stream, joins its thread
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

  // A stream is open and has delivered its first message.
  bool connected() const { return connected_.load(); }
  // Streams opened so far (1 after the first connection).
  uint64_t connections() const { return connections_.load(); }

 private:
  friend class ClusterClient;
  // `open` runs one stream to its end (or cancellation) and returns its
  // status; it calls `on_open` once the first message arrived.
  using Opener = std::function<absl::Status(
      grpc::ClientContext* ctx, const std::function<void()>& on_open)>;
  Subscription(Opener open, const ClientOptions& opts);
  void Loop();

  Opener open_;
  const int backoff_initial_ms_;
  const int backoff_max_ms_;
  std::atomic<bool> connected_{false};
  std::atomic<uint64_t> connections_{0};
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::thread thread_;
};

class ClusterClient {
 public:
  // The client of `node`'s agent. FailedPrecondition when the node has
  // no agent (HasAgent: no cluster.conf); a node in no fleet has a solo
  // one. Does not connect yet.
  static absl::StatusOr<std::unique_ptr<ClusterClient>> ForNode(
      const NodeDir& node, ClientOptions opts = {});
  // The client of the agent at opts.socket_path (must be set).
  static std::unique_ptr<ClusterClient> Connect(ClientOptions opts);
  ~ClusterClient();

  const std::string& socket_path() const { return opts_.socket_path; }

  // Unary calls: Unavailable when the agent is not running; the agent's
  // own status otherwise (InvalidArgument for a bad subject, ...).
  absl::Status ReportRates(const v1::ReportRatesRequest& req);
  absl::StatusOr<v1::FleetRatesReply> FleetRates(
      const v1::FleetRatesRequest& req);
  absl::StatusOr<v1::PolicyReply> PolicyAdd(const v1::PolicyAddRequest& req);
  absl::StatusOr<v1::PolicyReply> PolicyDelete(
      const v1::PolicyDeleteRequest& req);
  absl::StatusOr<v1::PolicyReply> PolicyList(const v1::PolicyListRequest& req);
  absl::StatusOr<v1::StartEtrnReply> StartEtrn(
      const v1::StartEtrnRequest& req);
  // The deadline is call_timeout_ms + req.wait_ms().
  absl::StatusOr<v1::EtrnStatusReply> EtrnStatus(
      const v1::EtrnStatusRequest& req);
  absl::StatusOr<v1::MembersReply> Members();
  absl::StatusOr<v1::TopSourcesReply> TopSources(
      const v1::TopSourcesRequest& req);
  absl::StatusOr<v1::PublishNodeStatusReply> PublishNodeStatus(
      const v1::NodeStatus& status);
  absl::StatusOr<v1::FleetStatusReply> FleetStatus();
  absl::StatusOr<v1::AgentStatsReply> AgentStats();

  // Peers' rate slots: `request` is asked for the request at every
  // (re)connection (so since_unix follows the clock); `on_reconnect` (may
  // be empty) runs before each new stream after the first, so a caller
  // can resend what an agent that restarted has lost.
  std::unique_ptr<Subscription> WatchRates(
      std::function<v1::WatchRatesRequest()> request,
      std::function<void(const v1::RateUpdate&)> on_update,
      std::function<void()> on_reconnect = {});
  // The policy overlay: a snapshot first at every (re)connection, then
  // changes.
  std::unique_ptr<Subscription> WatchPolicy(
      std::function<void(const v1::PolicyUpdate&)> on_update);

 private:
  explicit ClusterClient(ClientOptions opts);

  ClientOptions opts_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Local::Stub> stub_;
};

}  // namespace zm::cluster

#endif  // ZM_CLUSTER_CLIENT_CLUSTER_CLIENT_H_
