// cluster.conf: who this node is in the fleet, and how it finds its peers.
//
//   node-id          mx1                  # stable name; queue ids carry it
//   listen           127.0.0.1:7400       # gossip listener (host:port)
//   peers            10.1.0.2:7400 10.1.0.3:7400   # static seeds, or
//   seed-dns         zmnode-peers.mail.svc.cluster.local
//   tls-cert         $MAILVAR/cluster/node.pem
//   tls-key          $MAILVAR/cluster/node-key.pem
//   tls-ca           $MAILVAR/cluster/ca.pem
//   gossip-interval  1s
//
// `key value...` lines, '#' comments. Only node-id matters until the
// cluster agent lands; the rest is parsed and checked now so an operator's
// file keeps working.
#ifndef ZM_CONFIG_CLUSTER_CONF_H_
#define ZM_CONFIG_CLUSTER_CONF_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "node/common/node_dir.h"

namespace zm::config {

struct ClusterConf {
  std::string node_id;
  std::string listen;
  std::vector<std::string> peers;
  std::string seed_dns;
  std::string tls_cert, tls_key, tls_ca;
  int gossip_interval_ms = 1000;
};

absl::StatusOr<ClusterConf> ParseClusterConf(const std::string& path,
                                             const NodeDir& node);
inline absl::StatusOr<ClusterConf> LoadClusterConf(const NodeDir& node) {
  return ParseClusterConf(node.etc_file("cluster.conf"), node);
}

// The tag this node puts into queue ids: NodeTag(node-id), or of the host
// name when cluster.conf has none.
absl::StatusOr<std::string> LoadNodeTag(const NodeDir& node);

// "1s", "500ms", "2m", "1h", "3d", or plain seconds -> milliseconds.
absl::StatusOr<int64_t> ParseDurationMs(std::string_view text);

}  // namespace zm::config

#endif  // ZM_CONFIG_CLUSTER_CONF_H_
