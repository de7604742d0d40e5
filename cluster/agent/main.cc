// clusterd: the node's cluster agent (see clusterd.h).
#include "cluster/agent/clusterd.h"

int main(int argc, char** argv) {
  auto d = zm::Daemon::Init("clusterd", argc, argv);
  if (!d.ok()) return zm::Daemon::Fail("clusterd", d.status());
  return zm::cluster::RunClusterd(**d);
}
