// smtpserver: the ESMTP front door of a node. See smtpserver.h.
#include "node/daemon/daemon.h"
#include "node/smtpserver/smtpserver.h"

int main(int argc, char** argv) {
  auto d = zm::Daemon::Init("smtpserver", argc, argv);
  if (!d.ok()) return zm::Daemon::Fail("smtpserver", d.status());
  return zm::smtpserver::Run(**d);
}
