// errormail: the error channel's transport agent (docs/transport-agents.md).
#include "node/ta/errormail/errormail.h"

int main(int argc, char** argv) {
  return zm::ta::AgentMain(
      "errormail", argc, argv,
      [](const zm::ta::AgentStart& start,
         zm::Logger&) -> absl::StatusOr<std::unique_ptr<zm::ta::Handler>> {
        if (!start.args.empty()) {
          return absl::InvalidArgumentError("unknown argument '" +
                                            start.args[0] +
                                            "' (usage: errormail [-C DIR])");
        }
        return std::make_unique<zm::errormail::ErrorMailAgent>();
      });
}
