// mailbox: the local channel's transport agent (docs/transport-agents.md).
#include "node/ta/mailbox/mailbox.h"

int main(int argc, char** argv) {
  return zm::ta::AgentMain(
      "mailbox", argc, argv,
      [](const zm::ta::AgentStart& start,
         zm::Logger& log) -> absl::StatusOr<std::unique_ptr<zm::ta::Handler>> {
        auto opts = zm::mailbox::ParseFlags(start.node, start.args);
        if (!opts.ok()) return opts.status();
        return std::make_unique<zm::mailbox::MailboxAgent>(*std::move(opts),
                                                           start.node, log);
      });
}
