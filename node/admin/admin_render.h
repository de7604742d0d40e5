// The text forms of the scheduler's typed admin replies
// (zmnode/admin/v1/admin.proto): what the MAILQv2 text protocol sends and
// what mailq prints, made by one set of functions for both.
//
//   zmnode::admin::v1::QueueSummary s = ...;      // from gRPC or the loop
//   for (auto& l : zm::admin::QueueShortLines(s)) std::cout << l << "\n";
//   std::string j = zm::admin::MessageJson(entry);  // a mailq --json line
#ifndef ZM_ADMIN_ADMIN_RENDER_H_
#define ZM_ADMIN_ADMIN_RENDER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "zmnode/admin/v1/admin.pb.h"

namespace zm::admin {

namespace pb = ::zmnode::admin::v1;

// "1d3h", "21m34s", "0s" (zero and negative: "0s").
std::string FormatDuration(int64_t seconds);

// SHOW QUEUE SHORT: "Kids: ... Uptime: ..." and "Msgs in ... stored N".
std::vector<std::string> QueueShortLines(const pb::QueueSummary& s);

// SHOW QUEUE THREADS (mailq -Q): per ring a title line, a line per thread
// and a totals line; then the two QueueShortLines.
std::vector<std::string> QueueThreadsLines(const pb::QueueThreads& q);

// SHOW THREAD: per message "qid TAB sender TAB expires TAB next TAB
// attempts TAB diagnostic".
std::vector<std::string> ThreadLines(const pb::ThreadMessages& t);

// SHOW MESSAGES / mailq --json: one JSON object (one line).
std::string MessageJson(const pb::MessageEntry& m);

// SHOW COUNTERS: "name value" lines.
std::vector<std::string> CounterLines(const pb::Counters& c);

}  // namespace zm::admin

#endif  // ZM_ADMIN_ADMIN_RENDER_H_
