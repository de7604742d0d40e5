// `zmailer cluster`: the fleet as this node's cluster agent sees it.
//
//   zmailer [-C DIR] cluster [--json]
//
// Asks the node's cluster agent (clusterd) for its member list over the
// local service (Members RPC on run/cluster.sock, cluster.conf
// local-socket): node id, state, generation, gossip address, last contact
// and gossip lag. Exit 78 (EX_CONFIG) when the node has no cluster.conf or
// it is not a fleet member, 69 (EX_UNAVAILABLE) when the agent does not
// answer. Internal to node/zmailer.
#ifndef ZM_ZMAILER_ZMAILER_CLUSTER_H_
#define ZM_ZMAILER_ZMAILER_CLUSTER_H_

#include <CLI/CLI.hpp>

#include "node/common/node_dir.h"

namespace zm::zmailer::internal {

struct ClusterCommand {
  CLI::App* sub = nullptr;
  bool json = false;
  int timeout_ms = 3000;  // how long the agent may take to answer
};

// Registers the subcommand on `app`; `cmd` receives its options.
void AddClusterCommand(CLI::App& app, ClusterCommand* cmd);
int CmdCluster(const NodeDir& node, const ClusterCommand& cmd);

}  // namespace zm::zmailer::internal

#endif  // ZM_ZMAILER_ZMAILER_CLUSTER_H_
