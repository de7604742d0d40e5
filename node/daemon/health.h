// zm::health: what runs on a node and how full its spool folders are.
// Shared by `zmailer status` and `mailq -ss`; reads only pid files and
// folders, so it works while every daemon is down.
//
//   zm::health::NodeHealth h = zm::health::Collect(node);
//   std::cout << zm::health::Render(h);
#ifndef ZM_DAEMON_HEALTH_H_
#define ZM_DAEMON_HEALTH_H_

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "node/common/node_dir.h"

namespace zm::health {

// The long-running programs of a node, in start order (the supervisor
// starts them in this order and stops them in reverse).
inline const std::vector<std::string>& DaemonPrograms() {
  static const std::vector<std::string> kPrograms = {"scheduler", "router",
                                                     "smtpserver"};
  return kPrograms;
}
// The same for `node`, plus the cluster agent "clusterd" last when the node
// has an etc/cluster.conf naming it (node-id) or gossiping (gossip-listen):
// without gossip-listen the agent runs solo, local service only.
// The admin HTTP listener "admind" comes last.
std::vector<std::string> DaemonPrograms(const NodeDir& node);

struct ProgramState {
  std::string name;
  int pid = 0;           // 0 if no pid file
  bool running = false;  // pid file names a live process
};

struct NodeHealth {
  std::string home;
  bool frozen = false;
  ProgramState supervisor;  // "zmailer"
  std::vector<ProgramState> programs;
  std::vector<std::pair<std::string, size_t>> spool_counts;  // folder, files
};

// True if `pid` is alive (not a zombie) and runs the program `name` (by
// /proc/PID/comm), so a stale pid file naming a recycled pid, or an exited
// process its parent has not reaped yet, is not taken for ours.
bool ProcessRuns(int pid, std::string_view name);

// Pid in run/<program>.pid and whether that process runs that program.
ProgramState ReadProgramState(const NodeDir& node, const std::string& program);

NodeHealth Collect(const NodeDir& node);

// Human-readable, one line per program and one per spool folder:
//   node /srv/mx1 (frozen: no)
//   zmailer (supervisor)  running  pid 4711
//   scheduler             running  pid 4712
//   router                NOT running
//   spool: public 0  router 3  queue 12  transport 12  deferred 0 ...
std::string Render(const NodeHealth& h);

}  // namespace zm::health

#endif  // ZM_DAEMON_HEALTH_H_
