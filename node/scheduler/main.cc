// scheduler: runs transport agents for the queued messages of a node.
//   scheduler [-C DIR] [-f]
#include "node/daemon/daemon.h"
#include "node/scheduler/scheduler.h"

int main(int argc, char** argv) {
  auto d = zm::Daemon::Init("scheduler", argc, argv);
  if (!d.ok()) return zm::Daemon::Fail("scheduler", d.status());
  if (!(*d)->args().empty()) {
    return zm::Daemon::Fail("scheduler", absl::InvalidArgumentError(
                                             "usage: scheduler [-C DIR] [-f]"));
  }
  return zm::scheduler::Run(**d);
}
