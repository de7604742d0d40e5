// Node health for /healthz, /readyz and /api/v1/node.
//
//   Readiness r = CheckReadiness(node);
//   if (!r.ready) ...;  // r.failures: one line per failed check
//
// Ready means: the spool is writable (a probe file is made and removed),
// scheduler, router and smtpserver run (per their pid files), and the node
// is not draining (run/draining does not exist).
#ifndef ZM_ADMIND_ADMIND_HEALTH_H_
#define ZM_ADMIND_ADMIND_HEALTH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "node/common/node_dir.h"

namespace zm::admind {

struct Readiness {
  bool ready = false;
  bool draining = false;
  std::vector<std::string> failures;
};

Readiness CheckReadiness(const NodeDir& node);

// run/draining (the drain sequence's marker).
std::string DrainingMarker(const NodeDir& node);

struct ProcessInfo {
  std::string name;
  int pid = 0;
  bool up = false;
  int64_t restarts = 0;
  int64_t start_unix = 0;  // 0 if unknown
};

// The supervisor and every daemon program of the node.
std::vector<ProcessInfo> Processes(const NodeDir& node);

// Start time of a process in unix seconds (from /proc), 0 if unknown.
int64_t ProcessStartUnix(int pid);

}  // namespace zm::admind

#endif  // ZM_ADMIND_ADMIND_HEALTH_H_
