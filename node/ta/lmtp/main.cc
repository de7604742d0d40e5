// lmtp: delivers by LMTP (RFC 2033) to `host:port`, `[ip]:port` or a UNIX
// socket path (the job's host, or -F); the smtp agent's code in LMTP mode
// (node/ta/smtp/smtp.h, docs/transport-agents.md).
#include "node/ta/smtp/smtp.h"

int main(int argc, char** argv) {
  return zm::ta::AgentMain(
      "lmtp", argc, argv,
      [](const zm::ta::AgentStart& start,
         zm::Logger& log) -> absl::StatusOr<std::unique_ptr<zm::ta::Handler>> {
        return zm::smtp::MakeAgent(start, log, /*lmtp=*/true);
      });
}
