// The common main() of transport agents.
#include <signal.h>

#include <cstdio>

#include "node/common/strings.h"
#include "node/ta/common/ta.h"

namespace zm::ta {

absl::StatusOr<AgentStart> StartAgent(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGXFSZ, SIG_IGN);
  std::string dir;
  AgentStart start;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "-C") {
      if (i + 1 >= argc) return absl::InvalidArgumentError("-C needs a folder");
      dir = argv[++i];
    } else {
      start.args.emplace_back(a);
    }
  }
  start.node = LocateNode(dir);
  if (auto s = RequireNode(start.node); !s.ok()) return s;
  return start;
}

int AgentMain(std::string_view program, int argc, char** argv,
              const std::function<absl::StatusOr<std::unique_ptr<Handler>>(
                  const AgentStart&, Logger&)>& make_handler) {
  auto fail = [&](const absl::Status& s) {
    std::fprintf(stderr, "%.*s: %s\n", static_cast<int>(program.size()),
                 program.data(), Message(s).c_str());
    return s.code() == absl::StatusCode::kInvalidArgument ? 64 : 1;
  };
  auto start = StartAgent(argc, argv);
  if (!start.ok()) return fail(start.status());
  Logger log(std::string(program), start->node.maillog(), false);
  auto handler = make_handler(*start, log);
  if (!handler.ok()) return fail(handler.status());
  absl::Status s = RunAgent(start->node, **handler, log, 0, 1);
  if (!s.ok()) {
    std::fprintf(stderr, "%.*s: %s\n", static_cast<int>(program.size()),
                 program.data(), Message(s).c_str());
    return 76;
  }
  return 0;
}

}  // namespace zm::ta
