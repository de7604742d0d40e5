// clusterd: the cluster agent program of a node (agent.h does the work).
//
//   int main(int argc, char** argv) {
//     auto d = zm::Daemon::Init("clusterd", argc, argv);
//     if (!d.ok()) return zm::Daemon::Fail("clusterd", d.status());
//     return zm::cluster::RunClusterd(**d);
//   }
//
// Reads etc/cluster.conf (refuses to start on an error, `file:line: what`),
// keeps the fleet state in db/cluster/, serves the local service on
// run/cluster.sock and, when cluster.conf sets gossip-listen, the peer
// service over mutual TLS. SIGTERM: leaves the fleet, then stops.
#ifndef ZM_CLUSTER_AGENT_CLUSTERD_H_
#define ZM_CLUSTER_AGENT_CLUSTERD_H_

#include <memory>

#include "absl/status/statusor.h"
#include "cluster/agent/agent.h"
#include "cluster/conf/cluster_conf.h"
#include "node/common/node_dir.h"
#include "node/daemon/daemon.h"

namespace zm::cluster {

// The agent's options for `node` from its cluster.conf: addresses, seeds
// (DNS through the node's etc/resolver.conf), timers, TLS credentials,
// state folder, local socket, and the scheduler ETRN runner.
absl::StatusOr<AgentOptions> OptionsFromConf(const NodeDir& node,
                                             const ClusterConf& conf);

int RunClusterd(Daemon& daemon);

}  // namespace zm::cluster

#endif  // ZM_CLUSTER_AGENT_CLUSTERD_H_
