// `zmailer policy`: the fleet's dynamic policy overlay, through the node's
// cluster agent (docs/cluster.md, "Fleet rate limits, policy and ETRN").
//
//   zmailer policy add SUBJECT ACTION [--reason TEXT] [--ttl 1h] [--class N,M]
//   zmailer policy del SUBJECT
//   zmailer policy list [--json]
//
// SUBJECT: an IP address, a CIDR network, a domain (".domain" for its
// subdomains too) or a mail address; ACTION: reject, defer, freeze, allow
// or rate-class (with --class "N[,M]", as ratelimitmsgs). Entries
// replicate to every node; each smtpserver consults them before its
// static policy. Exit codes: 0 done, 64 bad subject/action, 66 no such
// entry (del), 69 the cluster agent is not running, 78 the node is not in
// a cluster. Internal to node/zmailer.
#ifndef ZM_ZMAILER_ZMAILER_POLICY_H_
#define ZM_ZMAILER_ZMAILER_POLICY_H_

#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "cluster/client/cluster_client.h"
#include "node/common/node_dir.h"

namespace zm::zmailer::internal {

// For every fleet command (policy, etrn, rates --fleet): the node's
// cluster client (FailedPrecondition when the node is not in a cluster),
// and the exit code of a failed call after one line on stderr
// ("zmailer: WHAT: reason"): 78 not in a cluster, 69 agent down, 64 bad
// argument, 66 not found, 1 otherwise.
absl::StatusOr<std::unique_ptr<cluster::ClusterClient>> FleetClient(
    const NodeDir& node);
int FleetError(std::string_view what, const absl::Status& s);

class PolicyCommand {
 public:
  explicit PolicyCommand(CLI::App& app);
  bool parsed() const { return cmd_->parsed(); }
  int Run(const NodeDir& node) const;

 private:
  int Add(const NodeDir& node) const;
  int Delete(const NodeDir& node) const;
  int List(const NodeDir& node) const;

  CLI::App* cmd_;
  CLI::App* add_;
  CLI::App* del_;
  CLI::App* list_;
  std::string subject_, action_, reason_, ttl_, rate_class_;
  bool json_ = false;
};

}  // namespace zm::zmailer::internal

#endif  // ZM_ZMAILER_ZMAILER_POLICY_H_
