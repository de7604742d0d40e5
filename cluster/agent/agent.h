// zm::cluster::Agent: the cluster agent of one node (program `clusterd`,
// docs/cluster.md).
//
// It joins the node to its fleet and keeps the fleet state in step:
//   - the peer service (peer.proto) on the gossip address, over mutual TLS:
//     every caller's claimed node id must match its certificate;
//   - SWIM membership (cluster/membership) over asynchronous gRPC calls,
//     joined through seeds (static, DNS A/AAAA or SRV, re-resolved);
//   - push-pull anti-entropy of the FleetState (cluster/state) with a few
//     random live peers every gossip interval, deltas chunked under a cap;
//   - the local service (local.proto) on a UNIX socket for the node's own
//     programs (smtpserver, scheduler, zmailer);
//   - the ETRN executor: every fleet ETRN request runs once on this node
//     through the scheduler's admin interface, and its result is recorded
//     so it flows back to the node that started it.
//
//   AgentOptions opts = ...;                 // OptionsFromConf() for clusterd
//   auto agent = Agent::Start(std::move(opts), log);
//   if (!agent.ok()) ...;                    // cannot listen, bad state dir
//   ...                                      // serves on its own threads
//   (*agent)->Stop(/*graceful=*/true);       // Leave, then shut down
//
// Nothing here is global: several agents run in one process (the tests do).
// Thread-safe: Stop() and the accessors may be called from any thread.
#ifndef ZM_CLUSTER_AGENT_AGENT_H_
#define ZM_CLUSTER_AGENT_AGENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cluster/membership/membership.h"
#include "cluster/state/fleet_state.h"
#include "node/common/log.h"

namespace grpc {
class ChannelCredentials;
class ServerContext;
class ServerCredentials;
}  // namespace grpc

namespace zm::cluster {

// How peers authenticate each other. Tests may use insecure credentials
// with an identity function of their own.
struct PeerSecurity {
  std::shared_ptr<grpc::ServerCredentials> server;
  std::shared_ptr<grpc::ChannelCredentials> channel;
  // The verified identity (node id) of the caller of an inbound RPC, from
  // its certificate; an error when it has none.
  std::function<absl::StatusOr<std::string>(const grpc::ServerContext&)>
      identity;
  // When set, used instead of `identity`: OK if the caller's verified
  // certificate names the node it claims to be (CN or a DNS SAN).
  std::function<absl::Status(const grpc::ServerContext&,
                             const std::string& claimed)>
      check;
  // When set, the credentials of a channel to a peer known only by its
  // address (a seed): the chain is verified, not the name, since a seed's
  // address need not be in its certificate.
  std::shared_ptr<grpc::ChannelCredentials> seed_channel;
  // Set the TLS target name of a channel to the peer's node id when it is
  // known (its certificate names it), so the server is checked too.
  bool target_name_is_node_id = false;
};

// The outcome of one local ETRN (the scheduler's answer, SMTP-style).
struct EtrnOutcome {
  int code = 250;
  std::string text;
};
using EtrnRunner = std::function<EtrnOutcome(const std::string& domain)>;

struct AgentOptions {
  std::string node_id;
  std::string version;
  // Gossip listener "host:port" (port 0 picks one: see Agent::peer_port);
  // empty = no peer service (a node alone).
  std::string listen;
  // What peers dial; empty = listen (with the port actually bound).
  std::string advertise;
  // Seeds: fixed "host:port" addresses, a DNS name whose A/AAAA records
  // are seeds on `seed_dns_port`, an SRV name. Re-resolved (and re-joined
  // when the node is alone) every seed_refresh_ms.
  std::vector<std::string> seeds;
  std::string seed_dns;
  int seed_dns_port = 0;
  std::string seed_srv;
  int64_t seed_refresh_ms = 30000;
  // Looks names up for seed_dns/seed_srv: type "A", "AAAA" or "SRV";
  // answers "host:port" (SRV) or addresses (A/AAAA). Empty = no DNS seeds.
  std::function<absl::StatusOr<std::vector<std::string>>(
      const std::string& type, const std::string& name)>
      resolve;

  // Anti-entropy: a round every gossip_interval_ms with `fanout` random
  // live peers; one delta at most exchange_max_bytes, at most
  // max_chunks_per_round of them per peer and direction in one round.
  int64_t gossip_interval_ms = 200;
  // A node that has seen no news (no rate, policy or ETRN change, local
  // or from a peer; node statuses do not count) for 2 s gossips only
  // with the peers whose probe answers carry a state hash other than its
  // own, plus one random peer this often; news brings it back to
  // gossip_interval_ms at once (0: never slow down). Peers with news
  // gossip with it at their own pace.
  int64_t gossip_idle_interval_ms = 30000;
  int fanout = 3;
  size_t exchange_max_bytes = 256 * 1024;
  int max_chunks_per_round = 16;
  // Deltas (Exchange replies, Push requests) of at least this many bytes
  // go gzip-compressed (gRPC message compression; 0: never). Rate slots
  // repeat their key prefixes and node ids: gzip takes them to about a
  // third (bench/README.md, cluster-sim "Gossip bytes").
  size_t compress_from_bytes = 512;
  // Bound of every gRPC message, both directions (and both services).
  size_t max_message_bytes = 4 << 20;
  // Deadline of one peer RPC other than probes.
  int64_t rpc_timeout_ms = 3000;

  // Membership tunables (self, clock and on_event are set by the agent).
  MembershipOptions membership;

  // Fleet state: a RocksDB folder, or in memory when empty.
  std::string state_dir;
  FleetStateOptions state;

  // The local service's UNIX socket (mode 0660); empty = none.
  std::string local_socket;

  PeerSecurity security;
  // Runs an ETRN on this node (required for the executor; the default in
  // OptionsFromConf asks the scheduler over its admin socket).
  EtrnRunner etrn;

  // How long Stop(true) waits for the Leave to reach peers.
  int64_t leave_timeout_ms = 3000;
};

// Gossip traffic and events since the start.
struct AgentStats {
  uint64_t bytes_sent = 0;       // serialized peer-service messages we sent
  uint64_t bytes_received = 0;   // and received (requests and replies)
  uint64_t exchanges = 0;        // Exchange calls completed (as caller)
  uint64_t pushes = 0;           // Push calls completed (as caller)
  uint64_t records_applied = 0;  // records merged from peers that changed state
  uint64_t peers_refused = 0;    // inbound calls refused (identity)
  uint64_t etrn_acted = 0;       // ETRN requests run on this node
  uint64_t gossip_ticks = 0;     // anti-entropy rounds due (one per interval)
  uint64_t gossip_rounds = 0;    // of which started sessions with peers
  uint64_t hash_mismatches = 0;  // probe answers with another state hash
  uint64_t deltas_gzipped = 0;   // deltas sent gzip-compressed
  bool gossip_idle = false;      // rounds slowed down (no news for 2 s)
};

class Agent {
 public:
  // Opens the state, starts both services and the threads, joins the
  // seeds. Errors: cannot listen, cannot open the state, bad options.
  static absl::StatusOr<std::unique_ptr<Agent>> Start(AgentOptions options,
                                                      Logger& log);
  ~Agent();  // Stop(false) if not stopped
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // graceful: leave the fleet first (bounded by leave_timeout_ms). Then
  // stops serving and ends the threads. Idempotent.
  void Stop(bool graceful);

  int peer_port() const;  // 0 without a peer service
  uint64_t generation() const;
  AgentStats Stats() const;
  Membership& membership();
  FleetState& state();

 private:
  Agent();
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace zm::cluster

#endif  // ZM_CLUSTER_AGENT_AGENT_H_
