#include "node/zmailer/zmailer_route.h"

#include <iostream>

#include "node/common/strings.h"
#include "node/router/routing.h"

namespace zm::zmailer::internal {

namespace {
constexpr int kExitNoUser = 67;
constexpr int kExitTempFail = 75;
constexpr int kExitConfig = 78;
}  // namespace

RouteCommand::RouteCommand(CLI::App& app) {
  cmd_ = app.add_subcommand(
      "route",
      "show where the router would send ADDRESS and why (sends nothing)");
  cmd_->add_option("ADDRESS", addresses_, "envelope recipient(s)")
      ->required();
}

int RouteCommand::Run(const NodeDir& node) const {
  if (auto s = RequireNode(node); !s.ok()) {
    std::cerr << "zmailer: " << Message(s) << "\n";
    return kExitConfig;
  }
  auto routing = router::Routing::Open(node);
  if (!routing.ok()) {
    std::cerr << "zmailer: " << Message(routing.status()) << "\n";
    return kExitConfig;
  }
  int rc = 0;
  for (const std::string& address : addresses_) {
    std::vector<std::string> trace;
    std::vector<router::Route> routes =
        (*routing)->RouteAddress(address, &trace);
    std::cout << "<" << address << ">\n";
    for (const std::string& line : trace) std::cout << "  " << line << "\n";
    std::cout << "  routes:\n";
    for (const router::Route& r : routes) {
      std::cout << "    " << r.channel << " " << r.host << " " << r.user;
      if (!r.diag.empty()) std::cout << " diag=\"" << r.diag << "\"";
      if (!r.sender.empty()) std::cout << " sender=<" << r.sender << ">";
      std::cout << "\n";
      if (r.channel == "error") rc = kExitNoUser;
      if (r.channel == "hold" && rc == 0) rc = kExitTempFail;
    }
  }
  return rc;
}

}  // namespace zm::zmailer::internal
