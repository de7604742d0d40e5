// Helpers shared by the supervisor and the control subcommands (start,
// stop, kill): process identity, pid files, waiting for an exit. Internal
// to node/zmailer.
#ifndef ZM_ZMAILER_SUPERVISOR_INTERNAL_H_
#define ZM_ZMAILER_SUPERVISOR_INTERNAL_H_

#include <sys/types.h>

#include <string>
#include <string_view>

#include "node/common/node_dir.h"

namespace zm::zmailer::internal {

// Waits until `pid` (not necessarily our child) has exited, at most
// `timeout_ms`. True if it is gone.
bool WaitForExit(pid_t pid, int timeout_ms);

// "exited with status 1", "was killed by signal 9 (Killed)".
std::string DescribeWaitStatus(int status);

// The last `max_lines` lines of `path` from byte `offset` on (at most the
// last 4 KiB), each prefixed with `indent`.
std::string TailOf(const std::string& path, off_t offset, int max_lines,
                   std::string_view indent);

// The last `max_lines` lines of the node's maillog written by `program`
// (all programs if empty).
std::string LastLogLines(const NodeDir& node, std::string_view program,
                         int max_lines, std::string_view indent);

// Where a background program's stdout and stderr go.
inline std::string StderrFile(const NodeDir& node, std::string_view program) {
  return node.log() + "/" + std::string(program) + ".stderr";
}

// The lock that only the running supervisor holds.
inline std::string SupervisorLock(const NodeDir& node) {
  return node.run() + "/zmailer.lock";
}

}  // namespace zm::zmailer::internal

#endif  // ZM_ZMAILER_SUPERVISOR_INTERNAL_H_
