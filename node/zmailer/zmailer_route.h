// `zmailer route ADDRESS...`: what the router would do with each address,
// and why (the chain of relations and DNS answers), without sending.
#ifndef ZM_ZMAILER_ZMAILER_ROUTE_H_
#define ZM_ZMAILER_ZMAILER_ROUTE_H_

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "node/common/node_dir.h"

namespace zm::zmailer::internal {

class RouteCommand {
 public:
  explicit RouteCommand(CLI::App& app);
  bool parsed() const { return cmd_->parsed(); }
  // Exit 0: every address deliverable; 67 (EX_NOUSER): some route is on
  // the error channel; 75 (EX_TEMPFAIL): held (DNS trouble); 78
  // (EX_CONFIG): no node or bad configuration.
  int Run(const NodeDir& node) const;

 private:
  CLI::App* cmd_;
  std::vector<std::string> addresses_;
};

}  // namespace zm::zmailer::internal

#endif  // ZM_ZMAILER_ZMAILER_ROUTE_H_
