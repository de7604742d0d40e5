// router: routes the messages in spool/router/ (see router.h).
#include "node/daemon/daemon.h"
#include "node/router/router.h"

int main(int argc, char** argv) {
  auto d = zm::Daemon::Init("router", argc, argv);
  if (!d.ok()) return zm::Daemon::Fail("router", d.status());
  auto options = zm::router::ParseRouterArgs((*d)->args());
  if (!options.ok()) return zm::Daemon::Fail("router", options.status());
  return zm::router::RunRouter(**d, *options);
}
