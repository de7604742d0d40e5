// `zmailer tlsrpt [--day YYYY-MM-DD] [--domain DOMAIN] [--org NAME]`: the
// RFC 8460 aggregate TLS reports of one UTC day (default today) from the
// smtp agent's data in log/tlsrpt/, as JSON on stdout: an array of one
// report per policy domain, or the one report of --domain.
#ifndef ZM_ZMAILER_ZMAILER_TLSRPT_H_
#define ZM_ZMAILER_ZMAILER_TLSRPT_H_

#include <CLI/CLI.hpp>
#include <string>

#include "node/common/node_dir.h"

namespace zm::zmailer::internal {

class TlsrptCommand {
 public:
  explicit TlsrptCommand(CLI::App& app);
  bool parsed() const { return cmd_->parsed(); }
  // 0 printed; 64 (EX_USAGE) a bad day; 66 (EX_NOINPUT) no data.
  int Run(const NodeDir& node) const;

 private:
  CLI::App* cmd_;
  std::string day_, domain_, org_;
};

}  // namespace zm::zmailer::internal

#endif  // ZM_ZMAILER_ZMAILER_TLSRPT_H_
