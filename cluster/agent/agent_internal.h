// The pieces of the cluster agent (agent.h), internal to cluster/agent:
// the gRPC transport of the membership and the anti-entropy calls, the
// peer and local services, anti-entropy rounds, the ETRN executor.
#ifndef ZM_CLUSTER_AGENT_AGENT_INTERNAL_H_
#define ZM_CLUSTER_AGENT_AGENT_INTERNAL_H_

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "cluster/agent/agent.h"
#include "cluster/agent/source_book.h"
#include "cluster/client/policy_overlay.h"
#include "cluster/membership/membership.h"
#include "cluster/state/fleet_state.h"
#include "node/common/log.h"
#include "zmnode/cluster/v1/local.grpc.pb.h"
#include "zmnode/cluster/v1/peer.grpc.pb.h"

namespace grpc {
class Channel;
class ClientContext;
}  // namespace grpc

namespace zm::cluster::internal {

namespace pb = ::zmnode::cluster::v1;

int64_t UnixMs();
int64_t SteadyMs();

// A hash of what a digest says about the records held (the origins'
// versions and policy set hashes; floors and resync progress left out):
// equal on two nodes that hold the same records. FNV-1a over the
// serialized parts, never 0.
uint64_t StateHash(const pb::Digest& digest);

struct Counters {
  std::atomic<uint64_t> bytes_sent{0}, bytes_received{0}, exchanges{0},
      pushes{0}, records_applied{0}, peers_refused{0}, etrn_acted{0};
  // Anti-entropy: Round() calls, rounds that started sessions, and probe
  // answers whose state hash differed from ours.
  std::atomic<uint64_t> gossip_ticks{0}, gossip_rounds{0}, hash_mismatches{0};
  // Deltas sent gzip-compressed (Exchange replies and Push requests of at
  // least compress_from_bytes).
  std::atomic<uint64_t> deltas_gzipped{0};
};

class AntiEntropy;

// At most one log line per key and interval, for events a peer can cause.
class LogLimiter {
 public:
  explicit LogLimiter(int64_t interval_ms) : interval_ms_(interval_ms) {}
  bool Allow(const std::string& key);

 private:
  const int64_t interval_ms_;
  absl::Mutex mu_;
  std::map<std::string, int64_t> last_ ABSL_GUARDED_BY(mu_);
};

// The membership's Transport over asynchronous (callback) gRPC calls, plus
// the anti-entropy calls. One channel per peer address, reused. Every call
// has a deadline; Shutdown() cancels what is in flight and waits until
// every callback has run, after which calls fail at once.
class GrpcTransport : public Transport {
 public:
  GrpcTransport(const AgentOptions& options, Sender self, Logger& log,
                Counters& counters);
  ~GrpcTransport() override;

  void SendPing(const Member& target, uint64_t seq, std::vector<Member> updates,
                int64_t timeout_ms, PingDone done) override;
  void SendPingReq(const Member& via, const Member& target, uint64_t seq,
                   std::vector<Member> updates, int64_t timeout_ms,
                   PingReqDone done) override;
  void SendJoin(const std::string& address, const Member& self,
                int64_t timeout_ms, JoinDone done) override;
  void SendFullSync(const Member& target, const Member& self,
                    int64_t timeout_ms, JoinDone done) override;
  void SendLeave(const Member& to, const Member& self, int64_t timeout_ms,
                 LeaveDone done) override;

  using ExchangeDone =
      std::function<void(absl::Status, const pb::ExchangeReply&)>;
  void Exchange(const Member& peer, const pb::Digest& digest,
                ExchangeDone done);
  using PushDone = std::function<void(absl::Status)>;
  void Push(const Member& peer, pb::Delta delta, PushDone done);

  // Probes carry our state hash and bring back the peer's (set before the
  // membership starts probing).
  void SetAntiEntropy(AntiEntropy* anti_entropy) {
    anti_entropy_ = anti_entropy;
  }

  void Shutdown();

 private:
  template <typename Req, typename Rep>
  struct Call;
  template <typename Req, typename Rep, typename Start, typename Done>
  void Run(const std::string& address, const std::string& node_id,
           int64_t timeout_ms, Req request, Start start, Done done);
  pb::Peer::Stub* StubFor(const std::string& address,
                          const std::string& node_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  pb::Sender SenderProto() const;
  void JoinVia(const std::string& address, const std::string& node_id,
               const Member& self, int64_t timeout_ms, JoinDone done);

  const AgentOptions& options_;
  const Sender self_;
  Logger& log_;
  Counters& counters_;
  AntiEntropy* anti_entropy_ = nullptr;
  LogLimiter limiter_{30000};
  struct Channel {
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<pb::Peer::Stub> stub;
  };
  absl::Mutex mu_;
  std::map<std::pair<std::string, std::string>, Channel> channels_
      ABSL_GUARDED_BY(mu_);
  std::set<std::shared_ptr<grpc::ClientContext>> in_flight_
      ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

// Checks that the caller of an inbound call is who it claims to be.
class PeerCheck {
 public:
  PeerCheck(const AgentOptions& options, Logger& log, Counters& counters)
      : options_(options), log_(log), counters_(counters), limiter_(10000) {}
  // OK, or PERMISSION_DENIED (logged, rate-limited) when the certificate
  // names someone else or nobody, or the claim is empty or ourselves.
  grpc::Status Check(const grpc::ServerContext& ctx, const std::string& rpc,
                     const std::string& claimed);

 private:
  const AgentOptions& options_;
  Logger& log_;
  Counters& counters_;
  LogLimiter limiter_;
};

class PeerService final : public pb::Peer::Service {
 public:
  PeerService(const AgentOptions& options, Membership& membership,
              FleetState& state, AntiEntropy& anti_entropy, PeerCheck& check,
              Logger& log, Counters& counters);

  grpc::Status Ping(grpc::ServerContext* ctx, const pb::PingRequest* req,
                    pb::PingReply* reply) override;
  grpc::Status PingReq(grpc::ServerContext* ctx, const pb::PingReqRequest* req,
                       pb::PingReqReply* reply) override;
  grpc::Status Join(grpc::ServerContext* ctx, const pb::JoinRequest* req,
                    pb::JoinReply* reply) override;
  grpc::Status Leave(grpc::ServerContext* ctx, const pb::LeaveRequest* req,
                     pb::LeaveReply* reply) override;
  grpc::Status Exchange(grpc::ServerContext* ctx,
                        const pb::ExchangeRequest* req,
                        pb::ExchangeReply* reply) override;
  grpc::Status Push(grpc::ServerContext* ctx, const pb::PushRequest* req,
                    pb::PushReply* reply) override;

 private:
  void Count(const google::protobuf::Message& in,
             const google::protobuf::Message& out);
  void NoteRejected(const std::string& from, const Changes& changes);

  const AgentOptions& options_;
  Membership& membership_;
  FleetState& state_;
  AntiEntropy& anti_entropy_;
  PeerCheck& check_;
  Logger& log_;
  Counters& counters_;
  LogLimiter limiter_{10000};
};

// Push-pull anti-entropy: each Round() starts a session with up to
// `fanout` random live peers that have none running: Exchange (our digest
// -> the records we lack, repeated while the peer says `more`), then Push
// of what the peer lacks (chunked the same way).
class AntiEntropy {
 public:
  AntiEntropy(const AgentOptions& options, FleetState& state,
              Membership& membership, GrpcTransport& transport, Logger& log,
              Counters& counters);
  void Round();
  // The fleet state's listener: news (a rate, policy or ETRN change, local
  // or from a peer) keeps rounds at gossip_interval_ms for 2 s.
  void NoteChanges(const Changes& c);
  // Our state hash (StateHash of our digest), for probes and their
  // answers.
  uint64_t MyHash() const;
  // A peer's state hash seen on a probe or its answer: if it differs from
  // ours, the peer gets an exchange at the next round, idle or not (0:
  // the peer sent none).
  void NotePeerHash(const std::string& node_id, uint64_t hash);
  // Unix ms when a direct exchange last showed that we held every record
  // of `node_id` that it had itself (0 = never).
  int64_t InSyncAt(const std::string& node_id) const;
  // Whether rounds are slowed down now (no news for 2 s).
  bool Idle() const;
  // Sessions in flight.
  size_t Busy() const;

 private:
  void Pull(const Member& peer, int chunk);
  void PushTo(const Member& peer, pb::Digest theirs, int chunk);
  void Finish(const Member& peer);
  void NoteSync(const Member& peer, const pb::Digest& theirs);

  const AgentOptions& options_;
  FleetState& state_;
  Membership& membership_;
  GrpcTransport& transport_;
  Logger& log_;
  Counters& counters_;
  LogLimiter limiter_{30000};
  mutable absl::Mutex mu_;
  std::set<std::string> busy_ ABSL_GUARDED_BY(mu_);
  // Peers whose state hash differed from ours on a probe.
  std::set<std::string> due_ ABSL_GUARDED_BY(mu_);
  bool idle_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, int64_t> in_sync_at_ ABSL_GUARDED_BY(mu_);
  // Per peer: its digest (serialized) at the end of our last exchange, and
  // when (steady ms).
  struct LastExchange {
    std::string digest;
    int64_t at_ms = 0;
  };
  std::map<std::string, LastExchange> last_ ABSL_GUARDED_BY(mu_);
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
  // Idle back-off: when the last news came (-1: before the first round)
  // and when the next round is due while idle (steady ms).
  int64_t news_at_ms_ ABSL_GUARDED_BY(mu_) = -1;
  int64_t idle_due_ms_ ABSL_GUARDED_BY(mu_) = 0;
};

// Runs each fleet ETRN request once on this node, on a thread of its own
// (the scheduler's answer may take a moment), and records the result.
class EtrnExecutor {
 public:
  EtrnExecutor(const AgentOptions& options, FleetState& state, Logger& log,
               Counters& counters);
  ~EtrnExecutor();  // Stop()
  void Start();
  void Stop();
  // A request seen for the first time (ours or a peer's).
  void Enqueue(const pb::EtrnRequest& request);

 private:
  void Loop();
  void Act(const pb::EtrnRequest& request);

  const AgentOptions& options_;
  FleetState& state_;
  Logger& log_;
  Counters& counters_;
  absl::Mutex mu_;
  std::deque<pb::EtrnRequest> queue_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// The default EtrnRunner of a node: "ETRN domain" on the scheduler's admin
// socket, as `zmailer etrn` does.
EtrnOutcome RunSchedulerEtrn(const std::string& node_home,
                             const std::string& domain);

// The seeds to join now: the fixed ones plus what DNS answers.
std::vector<std::string> ResolveSeeds(const AgentOptions& options, Logger& log,
                                      LogLimiter& limiter);

// The local service (local.proto) over the FleetState and the Membership.
// Streams end when the client goes or Shutdown() is called.
class LocalService final : public pb::Local::Service {
 public:
  LocalService(const AgentOptions& options, FleetState& state,
               Membership& membership, AntiEntropy* anti_entropy,
               EtrnExecutor& etrn, Logger& log, Counters& counters);

  // From the FleetState listener: wakes streams and ETRN waiters.
  void OnChanges(const Changes& changes);
  void Shutdown();

  grpc::Status ReportRates(grpc::ServerContext* ctx,
                           const pb::ReportRatesRequest* req,
                           pb::ReportRatesReply* reply) override;
  grpc::Status WatchRates(grpc::ServerContext* ctx,
                          const pb::WatchRatesRequest* req,
                          grpc::ServerWriter<pb::RateUpdate>* writer) override;
  grpc::Status FleetRates(grpc::ServerContext* ctx,
                          const pb::FleetRatesRequest* req,
                          pb::FleetRatesReply* reply) override;
  grpc::Status PolicyAdd(grpc::ServerContext* ctx,
                         const pb::PolicyAddRequest* req,
                         pb::PolicyReply* reply) override;
  grpc::Status PolicyDelete(grpc::ServerContext* ctx,
                            const pb::PolicyDeleteRequest* req,
                            pb::PolicyReply* reply) override;
  grpc::Status PolicyList(grpc::ServerContext* ctx,
                          const pb::PolicyListRequest* req,
                          pb::PolicyReply* reply) override;
  grpc::Status WatchPolicy(
      grpc::ServerContext* ctx, const pb::WatchPolicyRequest* req,
      grpc::ServerWriter<pb::PolicyUpdate>* writer) override;
  grpc::Status StartEtrn(grpc::ServerContext* ctx,
                         const pb::StartEtrnRequest* req,
                         pb::StartEtrnReply* reply) override;
  grpc::Status EtrnStatus(grpc::ServerContext* ctx,
                          const pb::EtrnStatusRequest* req,
                          pb::EtrnStatusReply* reply) override;
  grpc::Status Members(grpc::ServerContext* ctx, const pb::MembersRequest* req,
                       pb::MembersReply* reply) override;
  // agent_sources.cc: the busiest sources, node statuses, statistics.
  grpc::Status TopSources(grpc::ServerContext* ctx,
                          const pb::TopSourcesRequest* req,
                          pb::TopSourcesReply* reply) override;
  grpc::Status PublishNodeStatus(grpc::ServerContext* ctx,
                                 const pb::PublishNodeStatusRequest* req,
                                 pb::PublishNodeStatusReply* reply) override;
  grpc::Status FleetStatus(grpc::ServerContext* ctx,
                           const pb::FleetStatusRequest* req,
                           pb::FleetStatusReply* reply) override;
  grpc::Status AgentStats(grpc::ServerContext* ctx,
                          const pb::AgentStatsRequest* req,
                          pb::AgentStatsReply* reply) override;

 private:
  // One open stream's pending changes.
  struct Watcher {
    bool rates = false;  // else policy
    std::vector<pb::RateSlot> slots;
    std::vector<pb::PolicyEntry> entries;
    bool overflow = false;  // too much pending: send a fresh snapshot
  };
  Watcher* AddWatcher(bool rates);
  void RemoveWatcher(Watcher* w);
  // Waits (bounded) until `w` has something, the stream is cancelled or
  // the service shuts down; false on the last two.
  bool WaitFor(grpc::ServerContext* ctx, Watcher* w);
  std::vector<std::string> AliveNodes() const;
  // agent_sources.cc: what OnChanges does for TopSources and AgentStats.
  void NoteForSources(const Changes& changes);
  // Re-picks the keys whose minutes the source book keeps (every
  // kRetrackMs at most).
  void MaybeRetrack(bool force);
  // [start, end) of the rate window now, unix seconds.
  std::pair<int64_t, int64_t> Window() const;

  const AgentOptions& options_;
  FleetState& state_;
  Membership& membership_;
  AntiEntropy* anti_entropy_;
  EtrnExecutor& etrn_;
  Logger& log_;
  absl::Mutex mu_;
  std::set<Watcher*> watchers_ ABSL_GUARDED_BY(mu_);
  uint64_t etrn_results_seen_ ABSL_GUARDED_BY(mu_) = 0;
  // Alive members when each ETRN started here (bounded).
  std::map<std::string, std::vector<std::string>> expected_
      ABSL_GUARDED_BY(mu_);
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;

  Counters& counters_;
  const int64_t started_ms_;
  SourceBook book_;
  PolicyOverlay overlay_;  // the policy winners, for TopSources' state
  std::atomic<int64_t> next_retrack_ms_{0};
  absl::Mutex sources_mu_;
  // Keys shown by TopSources lately -> when (unix s): kept tracked.
  std::map<std::string, int64_t> shown_ ABSL_GUARDED_BY(sources_mu_);
  struct Propagation {
    uint64_t count = 0, sum_ms = 0;
    int64_t last_ms = 0, max_ms = 0;
  };
  Propagation propagation_ ABSL_GUARDED_BY(sources_mu_);
};

}  // namespace zm::cluster::internal

#endif  // ZM_CLUSTER_AGENT_AGENT_INTERNAL_H_
