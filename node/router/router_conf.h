// etc/router.conf: the router's switches (absent file = defaults).
//
//   dns-check auto            # yes | no | auto: check that a remote domain
//                             # can receive mail (MX, else A/AAAA); auto =
//                             # yes when etc/resolver.conf exists
//   forward no                # honour users' .forward files
//   forward-file %h/.forward  # where: %h home directory, %u user name
//   allowsourceroute no       # keep @a,@b: source routes (route via a)
//   max-alias-depth 10        # nesting of aliases/:include:/.forward
//
// `key value` per line, '#' comments; values may use $MAILHOME etc.
// Anything else: "router.conf:LINE: what".
#ifndef ZM_ROUTER_ROUTER_CONF_H_
#define ZM_ROUTER_ROUTER_CONF_H_

#include <string>

#include "absl/status/statusor.h"
#include "node/common/node_dir.h"

namespace zm::router {

struct RouterConf {
  bool dns_check = false;  // resolved from yes/no/auto
  bool forward = false;
  std::string forward_file = "%h/.forward";
  bool allow_source_route = false;
  int max_alias_depth = 10;
};

absl::StatusOr<RouterConf> LoadRouterConf(const NodeDir& node);

}  // namespace zm::router

#endif  // ZM_ROUTER_ROUTER_CONF_H_
