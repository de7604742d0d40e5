// zm::smtpserver: the node's ESMTP front door.
//
// Listens on every BindAddress/BindPort of etc/smtpserver.conf, runs one
// zm::smtp::Session per connection (Asio C++20 coroutines, one strand per
// session, one io_context thread per core), and accepts each message
// durably into spool/router/ before it answers "250 ... queued as QID".
// Spool work that blocks (open, write, fsync) runs on a small thread pool,
// never on an I/O thread.
//
//   int main(int argc, char** argv) {
//     auto d = zm::Daemon::Init("smtpserver", argc, argv);
//     if (!d.ok()) return zm::Daemon::Fail("smtpserver", d.status());
//     return zm::smtpserver::Run(**d);
//   }
//
// Signals: SIGTERM/SIGINT stop accepting, let sessions finish their
// transaction (bounded by drain-timeout) and exit 0; SIGHUP/SIGUSR1
// reload the configuration (listening addresses stay until a restart).
// A configuration error at start: "file:line: what" on stderr, exit 1.
#ifndef ZM_SMTPSERVER_SMTPSERVER_H_
#define ZM_SMTPSERVER_SMTPSERVER_H_

#include "node/daemon/daemon.h"

namespace zm::smtpserver {

// Runs the server until stopped; returns the process exit code.
int Run(Daemon& daemon);

}  // namespace zm::smtpserver

#endif  // ZM_SMTPSERVER_SMTPSERVER_H_
