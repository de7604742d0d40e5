// etc/router.conf: the router's switches (absent file = defaults).
//
//   dns-check auto            # yes | no | auto: check that a remote domain
//                             # can receive mail (MX, else A/AAAA); auto =
//                             # yes when etc/resolver.conf exists
//   forward no                # honour users' .forward files
//   forward-file %h/.forward  # where: %h home directory, %u user name
//   allowsourceroute no       # keep @a,@b: source routes (route via a)
//   max-alias-depth 10        # nesting of aliases/:include:/.forward
//   relations aliases aliases aliases-2
//                             # the dbases.conf relations a routing step
//                             # consults, in order; the first that has
//                             # the key answers. Steps: aliases,
//                             # fqdnaliases, routes, thishost, userdb.
//                             # Default: the built-in relation(s) of the
//                             # step (routes: routesdb or routes; thishost:
//                             # thishost or localnames).
//
// `key value` per line, '#' comments; values may use $MAILHOME etc.
// Anything else: "router.conf:LINE: what".
#ifndef ZM_ROUTER_ROUTER_CONF_H_
#define ZM_ROUTER_ROUTER_CONF_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "node/common/node_dir.h"

namespace zm::router {

struct RouterConf {
  bool dns_check = false;  // resolved from yes/no/auto
  bool forward = false;
  std::string forward_file = "%h/.forward";
  bool allow_source_route = false;
  int max_alias_depth = 10;

  // `relations STEP NAME...` lines, by step; a step not listed uses its
  // built-in relations.
  struct StepRelations {
    std::vector<std::string> names;
    int line = 0;  // in router.conf, for errors about the names
  };
  std::map<std::string, StepRelations, std::less<>> relations;
  std::string path;  // router.conf, for errors
};

// The routing steps that consult relations, in routing order.
inline constexpr std::string_view kRelationSteps[] = {
    "fqdnaliases", "thishost", "aliases", "userdb", "routes"};

absl::StatusOr<RouterConf> LoadRouterConf(const NodeDir& node);

}  // namespace zm::router

#endif  // ZM_ROUTER_ROUTER_CONF_H_
