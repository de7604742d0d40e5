// cluster.conf: who this node is in the fleet, where it gossips, how it
// finds its peers, and the certificates of the fleet's mutual TLS.
//
//   node-id            mx1
//   gossip-listen      0.0.0.0:7400
//   advertise          10.1.0.1:7400        # what peers dial (default: listen)
//   seed               10.1.0.2:7400        # repeatable, several per line too
//   seed-dns           zmnode-peers.mail.svc.cluster.local   # A/AAAA
//   seed-srv           _gossip._tcp.zmnode.mail.svc.cluster.local
//   tls-cert           $MAILVAR/tls/cluster-cert.pem
//   tls-key            $MAILVAR/tls/cluster-key.pem
//   tls-ca             $MAILVAR/tls/cluster-ca.pem
//
// `KEY value...` lines, '#' comments, $MAILVAR-style variables in paths
// (relative paths are relative to etc/). Anything unknown or malformed is
// InvalidArgument "file:line: what"; a program that needs the file refuses
// to start on it. A file without gossip-listen describes a node that is
// not in a fleet (Enabled() is false): only node-id is then used.
//
//   auto conf = zm::cluster::LoadClusterConf(node);
//   if (!conf.ok()) return conf.status();       // "etc/cluster.conf:3: ..."
//   if (!conf->Enabled()) return NotInAFleet();
//   Listen(conf->gossip_listen.ToString());
//
// Durations take ZMailer's units ("250ms", "2s", "1m", "24h", "1d2h"); a
// plain number is in the unit the key's name says (…-ms keys and
// gossip-interval/probe-*/suspicion-* in milliseconds, seed-refresh,
// full-sync-interval and policy-tombstone-horizon in seconds).
#ifndef ZM_CLUSTER_CONF_CLUSTER_CONF_H_
#define ZM_CLUSTER_CONF_CLUSTER_CONF_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "node/common/node_dir.h"

namespace zm::cluster {

// "host:port" or "[v6-address]:port". host is kept without brackets.
struct HostPort {
  std::string host;
  uint16_t port = 0;

  // "host:port", or "[host]:port" when host contains ':'.
  std::string ToString() const;
  // True for 0.0.0.0, :: and an empty host (listen on every address).
  bool IsWildcard() const;
  bool operator==(const HostPort&) const = default;
};

// Parses "host:port" / "[v6]:port" (port 1..65535, host non-empty).
absl::StatusOr<HostPort> ParseHostPort(std::string_view text);

struct ClusterConf {
  std::string node_id;  // DNS-name characters; CN and DNS SAN of our cert

  // Gossip (the peer service). Unset port 0 = not in a fleet.
  HostPort gossip_listen;
  HostPort advertise;  // = gossip_listen unless set; never a wildcard

  // Where to find peers: any combination.
  std::vector<HostPort> seeds;
  std::string seed_dns;  // A/AAAA name; the port is gossip_listen's
  std::string seed_srv;  // SRV name; ports from the records
  int64_t seed_refresh_ms = 30'000;  // re-resolve DNS seeds, retry seeds

  // SWIM / Lifeguard.
  int64_t gossip_interval_ms = 200;  // anti-entropy round
  int fanout = 3;                    // peers per round
  int64_t probe_interval_ms = 1000;
  int64_t probe_timeout_ms = 500;
  int indirect_probes = 3;           // k peers asked to probe for us
  int64_t suspicion_min_ms = 2000;   // with many confirmations
  int64_t suspicion_max_ms = 6000;   // with none
  // Pull one random member's whole view this often (scaled past 32
  // members); 0 ("off") = never. At least 1 s.
  int64_t full_sync_interval_ms = 30'000;

  // Mutual TLS (absolute paths; the files exist when Enabled()).
  std::string tls_cert, tls_key, tls_ca;

  // Bound of one gossip message (each RPC, both directions).
  int64_t max_message_bytes = 4 << 20;

  // The local service for the node's own programs (absolute path).
  std::string local_socket;  // default <node>/run/cluster.sock

  // Rate window; unset = the smtpserver.conf values (PARAM rate-slots /
  // rate-slot-seconds), which the agent must agree with.
  std::optional<int> rate_slots;
  std::optional<int> rate_slot_seconds;

  // Policy tombstones are kept this long; a peer further behind re-syncs.
  int64_t policy_tombstone_horizon_ms = 24LL * 3600 * 1000;

  bool Enabled() const { return gossip_listen.port != 0; }
};

// Parses the text of a cluster.conf. `filename` is only used in errors.
// Paths are expanded with the node's variables; when the file enables
// gossip, the three tls-* files must exist and be readable (the error names
// the line of the key, or of gossip-listen when a key is missing).
absl::StatusOr<ClusterConf> ParseClusterConf(std::string_view text,
                                             std::string_view filename,
                                             const NodeDir& node);

// Reads and parses etc/cluster.conf. NotFound (naming the file) when there
// is none.
absl::StatusOr<ClusterConf> LoadClusterConf(const NodeDir& node);

}  // namespace zm::cluster

#endif  // ZM_CLUSTER_CONF_CLUSTER_CONF_H_
