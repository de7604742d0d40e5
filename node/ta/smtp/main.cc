// smtp: the transport agent that sends mail by SMTP (node/ta/smtp/smtp.h).
#include "node/common/strings.h"
#include "node/ta/smtp/smtp.h"

int main(int argc, char** argv) {
  return zm::ta::AgentMain(
      "smtp", argc, argv,
      [](const zm::ta::AgentStart& start,
         zm::Logger& log) -> absl::StatusOr<std::unique_ptr<zm::ta::Handler>> {
        return zm::smtp::MakeAgent(start, log);
      });
}
