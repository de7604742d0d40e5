// The node's identity from etc/cluster.conf, for every program of the node.
//
//   auto id = zm::config::LoadNodeId(node);   // "mx1", or "" when unset
//
// Only the node-id line is read here; the whole file (gossip, seeds,
// TLS, ...) is parsed and checked by zm::cluster::LoadClusterConf
// (cluster/conf/cluster_conf.h), which the cluster agent and zmailer use.
#ifndef ZM_CONFIG_CLUSTER_CONF_H_
#define ZM_CONFIG_CLUSTER_CONF_H_

#include <string>

#include "absl/status/statusor.h"
#include "node/common/node_dir.h"

namespace zm::config {

// The node-id value of etc/cluster.conf ("" if the file has none).
// NotFound if there is no cluster.conf; "file:line: what" for a node-id
// line without exactly one value.
absl::StatusOr<std::string> LoadNodeId(const NodeDir& node);

// The tag this node puts into queue ids: NodeTag(node-id), or of the host
// name when cluster.conf has none.
absl::StatusOr<std::string> LoadNodeTag(const NodeDir& node);

// "1s", "500ms", "2m", "1h", "3d", or plain seconds -> milliseconds.
absl::StatusOr<int64_t> ParseDurationMs(std::string_view text);

}  // namespace zm::config

#endif  // ZM_CONFIG_CLUSTER_CONF_H_
