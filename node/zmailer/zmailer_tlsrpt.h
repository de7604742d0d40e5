// `zmailer tlsrpt [--day YYYY-MM-DD] [--domain DOMAIN] [--org NAME]`: the
// RFC 8460 aggregate TLS reports of one UTC day (default today) from the
// smtp agent's data in log/tlsrpt/, as JSON on stdout: an array of one
// report per policy domain, or the one report of --domain.
//
// `zmailer tlsrpt --send [--day ...] [--domain ...] [--from ADDR]` mails
// them instead (default: yesterday, the last whole day): each policy
// domain's report to the mailto: addresses of its `_smtp._tls.DOMAIN`
// record's rua=, as RFC 8460 section 5.3 says (gzipped JSON in a
// multipart/report), submitted through the node's spool like sendmail,
// from the null sender (no bounces) with From: ADDR (default
// postmaster@ the mail.conf hostname). One line per domain on stdout.
// https: rua URIs are not supported (said so). A daily cron job runs it.
#ifndef ZM_ZMAILER_ZMAILER_TLSRPT_H_
#define ZM_ZMAILER_ZMAILER_TLSRPT_H_

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "node/common/node_dir.h"

namespace zm::zmailer::internal {

class TlsrptCommand {
 public:
  explicit TlsrptCommand(CLI::App& app);
  bool parsed() const { return cmd_->parsed(); }
  // 0 printed (or sent); 64 (EX_USAGE) a bad day; 66 (EX_NOINPUT) no
  // data; 75 (EX_TEMPFAIL) --send could not look up or submit one.
  int Run(const NodeDir& node) const;

 private:
  int Send(const NodeDir& node, const std::vector<nlohmann::json>& reports,
           const std::string& org) const;

  CLI::App* cmd_;
  std::string day_, domain_, org_, from_;
  bool send_ = false;
};

}  // namespace zm::zmailer::internal

#endif  // ZM_ZMAILER_ZMAILER_TLSRPT_H_
