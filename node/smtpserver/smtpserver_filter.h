// zm::smtpserver::ContentFilter: the `PARAM contentfilter` hook.
//
// ZMailer's synchronous content filter: an external program kept running
// across messages, asked once per received message before the smtpserver
// answers the end of DATA. zmnode keeps a small pool of such processes so
// concurrent sessions do not wait for each other.
//
// The conversation (one line each way per message; see
// docs/content-filter.md):
//   smtpserver -> filter:  "<spool file path> <queue id>\n"
//   filter -> smtpserver:  "0 text"                  accept
//                          "-1 550 5.7.1 text"       reject (code optional)
//                          "1 text"                  accept, but freeze
// Lines the filter writes that start with '#' (ZMailer's "#hungry"
// readiness line) are skipped. A filter that does not answer within the
// timeout, exits, or answers anything else gives kTempFail (451 4.7.1);
// that process is killed and a fresh one is started for the next
// message. Unchecked mail is never accepted.
//
//   auto filter = MakeContentFilter(config, log);   // config.content_filter
//   if (!filter.ok()) ...;                          // bad program path
//   if (*filter == nullptr) ...;                    // no filter configured
//   FilterResult r = (*filter)->Check(path, queue_id);
//   if (r.outcome == FilterResult::Outcome::kReject) reply(r.code, ...);
#ifndef ZM_SMTPSERVER_SMTPSERVER_FILTER_H_
#define ZM_SMTPSERVER_SMTPSERVER_FILTER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "node/common/log.h"
#include "node/smtpserver/smtpserver_config.h"

namespace zm::smtpserver {

struct FilterResult {
  enum class Outcome { kAccept, kReject, kFreeze, kTempFail };
  Outcome outcome = Outcome::kTempFail;
  // The SMTP reply to give: 250 2.0.0 for kAccept and kFreeze, the
  // filter's 5xx (default 550 5.7.1) for kReject, 451 4.7.1 (or the
  // filter's own 4xx) for kTempFail.
  int code = 451;
  std::string enhanced = "4.7.1";
  std::string text;  // the filter's text, or why the check failed
};

class ContentFilter {
 public:
  virtual ~ContentFilter() = default;
  // Asks a filter process about the message at `message_path`.
  // Thread-safe; blocks up to the timeout (plus the wait for a free
  // process, bounded by the same timeout).
  virtual FilterResult Check(const std::string& message_path,
                             const std::string& queue_id) = 0;
};

struct FilterOptions {
  std::string program;  // argv split on white space; the first is the path
  int timeout_sec = 60;
  int max_processes = 4;  // the pool's size
};

// nullptr (and OK) when `config.content_filter` is empty; InvalidArgument
// when the program is not an executable file. Processes start on first
// use. `log` must outlive the filter.
absl::StatusOr<std::unique_ptr<ContentFilter>> MakeContentFilter(
    const ServerConfig& config, Logger& log);
absl::StatusOr<std::unique_ptr<ContentFilter>> MakeContentFilter(
    const FilterOptions& options, Logger& log);

// Parses one answer line of a filter (without its newline). Exposed for
// tests; a garbage line is kTempFail with `text` saying so.
FilterResult ParseFilterAnswer(std::string_view line);

}  // namespace zm::smtpserver

#endif  // ZM_SMTPSERVER_SMTPSERVER_FILTER_H_
