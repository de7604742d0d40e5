// Drain: how a node stops without losing or stranding mail (docs/
// operations.md, "Drain").
//
//   zmailer [-C DIR] drain [--handoff HOST:PORT]... [--timeout DURATION]
//
// The sequence, run by the supervisor on SIGTERM (`zmailer drain` sends it
// and waits; `zmailer stop` sends SIGINT, the same without step 2):
//   1. run/draining is created: admind's /readyz answers 503 from now on;
//   2. etc/drain.conf's readiness-delay passes, so a load balancer or a
//      Kubernetes Service stops sending new clients while SMTP still works;
//   3. the smtpserver stops: new connections get 421 4.3.2, running
//      transactions finish (bounded by smtpserver.conf's drain-timeout);
//   4. clusterd leaves the fleet gracefully (its peers see "left");
//   5. the other programs stop. Queued mail stays in the spool.
// With --handoff, once the node has stopped, each queued message is relayed
// over SMTP to one of the peers and removed here only after that peer's
// 250 for the final dot; any failure keeps it. `zmailer start` removes
// run/draining.
//
// etc/drain.conf (optional; `KEY value` lines, '#' comments, errors as
// "file:line: what"):
//   readiness-delay 5s     # step 2 (0 in tests)
//   stop-timeout 90s       # how long each program may take to stop
//   handoff-timeout 30s    # one SMTP exchange of a handoff
//
// Internal to node/zmailer.
#ifndef ZM_ZMAILER_ZMAILER_DRAIN_H_
#define ZM_ZMAILER_ZMAILER_DRAIN_H_

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "node/common/log.h"
#include "node/common/node_dir.h"

namespace zm::zmailer::internal {

struct DrainSettings {
  int64_t readiness_delay_ms = 5000;
  int64_t stop_timeout_ms = 90000;
  int64_t handoff_timeout_ms = 30000;
};

// etc/drain.conf; the defaults above when the file does not exist.
absl::StatusOr<DrainSettings> LoadDrainSettings(const NodeDir& node);

// The marker readiness checks look at: present while the node drains.
inline std::string DrainingMarker(const NodeDir& node) {
  return node.run() + "/draining";
}

// How long `zmailer stop`/`drain` wait for the supervisor to finish.
int64_t DrainBoundMs(const NodeDir& node, const DrainSettings& settings);

struct HandoffPeer {
  std::string host;  // numeric IPv4/IPv6 address
  int port = 25;
};

struct HandoffReport {
  int handed = 0;   // messages a peer took (and that were removed here)
  int partial = 0;  // routed messages some of whose recipients a peer took
  int kept = 0;     // messages that stay in this node's spool
  std::vector<std::string> problems;  // one line each
};

// Relays every message of router/, deferred/ and queue/ (its recipients
// without a final result) to `peers` (tried in turn, starting with a
// different one for each message) and removes it once a peer accepted all
// of them. For a routed message some of whose recipients were accepted,
// those get a "delivered" result in its control file, so they are not
// sent again. Needs the node stopped (no scheduler or router running).
HandoffReport HandOff(const NodeDir& node, const std::vector<HandoffPeer>& peers,
                      const DrainSettings& settings, Logger& log);

struct DrainCommand {
  CLI::App* sub = nullptr;
  std::vector<std::string> handoff;  // HOST:PORT
  std::string timeout;               // a duration; "" = DrainBoundMs
};

void AddDrainCommand(CLI::App& app, DrainCommand* cmd);
int CmdDrain(const NodeDir& node, const DrainCommand& cmd);

}  // namespace zm::zmailer::internal

#endif  // ZM_ZMAILER_ZMAILER_DRAIN_H_
