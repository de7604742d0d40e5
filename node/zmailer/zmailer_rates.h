// `zmailer rates`: the sources the rate-tracker counted lately.
//
//   zmailer rates [-n N] [--by FIELD] [--json] [--fleet] [KEY]
//
// Reads the smtpserver's rate-tracker state (db/ratetrack/) through
// RocksDB's read-only mode, which takes no lock, so it works while the
// smtpserver runs (and shows what it flushed, at most a second old).
// --fleet asks the node's cluster agent instead: the sources counted by
// every node of the fleet, with each node's contribution.
// Internal to node/zmailer.
#ifndef ZM_ZMAILER_ZMAILER_RATES_H_
#define ZM_ZMAILER_ZMAILER_RATES_H_

#include <CLI/CLI.hpp>
#include <string>

#include "node/common/node_dir.h"

namespace zm::zmailer::internal {

struct RatesCommand {
  CLI::App* sub = nullptr;
  size_t top = 20;
  std::string by = "messages";
  bool json = false;
  std::string key;  // one source: "ip4:...", an IP address, or a user
  bool fleet = false;  // from the cluster agent: every node's counts
};

// Registers the subcommand on `app`; `cmd` receives its options.
void AddRatesCommand(CLI::App& app, RatesCommand* cmd);
int CmdRates(const NodeDir& node, const RatesCommand& cmd);

}  // namespace zm::zmailer::internal

#endif  // ZM_ZMAILER_ZMAILER_RATES_H_
