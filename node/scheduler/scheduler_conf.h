// scheduler.conf: which transport agent serves a channel/host pair, and
// under which limits and retry rules (ZMailer's format, docs/scheduler.md).
//
//   PARAMauthfile = "$MAILVAR/scheduler.auth"
//   */*     interval=1m expiry=3d retries="1 1 2 3 5 8 13 21 34"
//           maxta=0 maxring=20
//   local/file*
//   local/pipe*
//       maxchannel=15
//       command="mailbox -8"
//
// A clause starts at column 0 with one or more `channel/host` selectors
// (sh globs: `*`, `?`, `[...]`, `{a,b}`, `\` escapes); its parameters
// follow on the same line or on indented lines. Selector lines without
// parameters share the next clause's parameters. A thread's parameters are
// those of every clause that matches it, top to bottom, until the first
// matching clause that has a `command`.
//
//   auto conf = zm::scheduler::LoadSchedulerConf(node);   // file:line errors
//   ThreadParams p = conf->Resolve("smtp", "mx.example.net");
//
// A SchedulerConf is immutable after parsing and safe to share.
#ifndef ZM_SCHEDULER_SCHEDULER_CONF_H_
#define ZM_SCHEDULER_SCHEDULER_CONF_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "node/common/node_dir.h"

namespace zm::scheduler {

// The process limit when maxta=0 ("let the scheduler decide"): half of the
// file descriptors the scheduler may open (two pipes per agent), less 100
// for the admin connections and files, within 10..1000.
int AutoMaxTa();

// The parameters a channel/host thread runs under.
struct ThreadParams {
  int64_t interval_ms = 60'000;
  int64_t idlemax_ms = 180'000;
  int64_t expiry_ms = 3 * 86'400'000LL;
  int64_t warning_ms = 0;  // delay DSN after this long in the queue; 0: none
  std::vector<int> retries = {1, 1, 2, 3, 5, 8, 13, 21, 34};
  int maxchannel = 0;  // 0 = no limit
  int maxring = 0;     // 0 = no limit
  // Agents working on one channel/host thread at the same time (parallel
  // connections to one destination); 0 = no limit beyond the others.
  int maxthr = 20;
  int skew = 1;
  int overfeed = 0;
  bool ageorder = false;
  bool queueonly = false;
  // Jobs hold one host's recipients only: always so here (a thread is
  // one channel/host), so the flag is accepted and changes nothing.
  bool bhost = false;
  std::string user;
  std::string group;
  std::optional<int> nice;
  std::optional<int> priority;
  std::string command;  // as written, before $channel/$host substitution
  int ring = -1;        // index of the clause that gave the command (-1: none)
  std::string ring_name;  // that clause's first selector
};

struct Param {
  int line = 0;
  std::string key;
  std::string value;  // unquoted; empty for boolean flags
  bool has_value = false;
};

struct Clause {
  int line = 0;
  std::vector<std::string> selectors;  // "channel/hostglob"
  std::vector<Param> params;
  bool has_command = false;
};

struct SchedulerConf {
  std::string file;
  std::string authfile;  // PARAMauthfile, expanded; "" = none
  std::string mailsock;  // PARAMmailsock, expanded; default UNIX:run/mailq.sock
  // PARAMgrpcaddr ("TCP:port" = 127.0.0.1, "TCP:host:port", "off") as a
  // gRPC address "host:port"; "" = the admin gRPC service only on
  // run/scheduler.sock (docs/admin-protocol.md).
  std::string grpcaddr;
  // PARAMgrpccert / PARAMgrpckey: PEM files (expanded paths) that put TLS
  // on the PARAMgrpcaddr listener; both or neither. "" = plain HTTP/2.
  // Their lines, for the file:line errors of the scheduler's checks of
  // the files' contents (scheduler_admin_grpc.cc).
  std::string grpccert, grpckey;
  int grpccert_line = 0, grpckey_line = 0;
  int maxta = 0;         // from the */* clause (0 = automatic)
  std::optional<int> sysnice;
  std::optional<int> syspriority;
  std::vector<Clause> clauses;

  // The parameters of thread channel/host.
  ThreadParams Resolve(std::string_view channel, std::string_view host) const;
  int EffectiveMaxTa() const { return maxta > 0 ? maxta : AutoMaxTa(); }
};

// Parses `text` as the contents of `file` (named in errors). `node` gives
// $MAILHOME and friends for PARAM values.
absl::StatusOr<SchedulerConf> ParseSchedulerConf(std::string_view text,
                                                 const std::string& file,
                                                 const NodeDir& node);
// Reads etc/scheduler.conf.
absl::StatusOr<SchedulerConf> LoadSchedulerConf(const NodeDir& node);

// sh-style glob: `*`, `?`, `[abc]`, `[a-z]`, `[!x]`, `{alt1,alt2}`
// (nestable), `\x`. Case-insensitive (host names are).
bool GlobMatch(std::string_view pattern, std::string_view text);

// True if selector "changlob/hostglob" matches channel and host.
bool SelectorMatches(std::string_view selector, std::string_view channel,
                     std::string_view host);

// Substitutes $channel, $host, ${channel}, ${host} and the node variables
// (${LOGDIR}, $MAILBIN, ... and the environment) in a command string.
absl::StatusOr<std::string> ExpandCommand(std::string_view command,
                                          std::string_view channel,
                                          std::string_view host,
                                          const NodeDir& node);

// Splits a command into words: white space separates, double quotes group
// (a backslash escapes the next character inside them).
std::vector<std::string> SplitCommandWords(std::string_view command);

}  // namespace zm::scheduler

#endif  // ZM_SCHEDULER_SCHEDULER_CONF_H_
