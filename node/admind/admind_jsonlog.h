// The event log as JSON lines: with `json-log yes` in admin.conf, admind
// follows log/maillog (every program's zm::Logger lines) and appends each
// event to log/maillog.json as one JSON object:
//
//   {"ts":"2026-11-21T08:03:44Z","host":"mx1","program":"scheduler",
//    "pid":4712,"queue_id":"1K0R3N6QPY9P11PK-mx1","level":"info","msg":"..."}
//
//   JsonLog j(node);
//   j.Poll(now);   // from the main loop, about every second
//
// Where it got to (inode and offset of log/maillog) is kept in
// run/maillog.json.pos, so a restart neither repeats nor skips lines; a
// rotated log (new inode, or shorter than the position) is read from its
// start. Each Poll reads at most 4 MiB. The Logger stays a single write(2)
// per line and knows nothing of this.
#ifndef ZM_ADMIND_ADMIND_JSONLOG_H_
#define ZM_ADMIND_ADMIND_JSONLOG_H_

#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

#include "node/common/node_dir.h"

namespace zm::admind {

// One maillog line as JSON ("" for a line that is not a Logger line).
// `now` supplies the year syslog stamps lack.
std::string MaillogLineToJson(std::string_view line, time_t now);

class JsonLog {
 public:
  // Creates log/maillog.json and takes the position: where it stopped
  // before, or else the end of log/maillog (events from now on).
  explicit JsonLog(const NodeDir& node);
  // Converts what was appended to log/maillog since the last call.
  void Poll(time_t now);

 private:
  void LoadPosition();
  void SavePosition();

  const std::string log_path_;
  const std::string json_path_;
  const std::string pos_path_;
  ino_t inode_ = 0;
  uint64_t offset_ = 0;
};

}  // namespace zm::admind

#endif  // ZM_ADMIND_ADMIND_JSONLOG_H_
