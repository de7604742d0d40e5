// The transport control file: the router's verdict on one message, read by
// the scheduler and the transport agents (docs/spool.md).
//
//   zmnode-control 1
//   i 0GC4H8WY3TQ2K7PX-mx1        queue id = message file name in queue/
//   o 412                         offset of the RFC 5322 message in it
//   s alice@example.org           envelope sender ("" = <>)
//   e alice@example.org           where DSNs go ("" = nowhere)
//   E envid / R ret               DSN ENVID and RET, if given
//   r 0 local root root notify=FAILURE orcpt=rfc822;root@localhost
//   orig=root@localhost r 1 smtp example.net bob@example.net
//   orig=bob@example.net end                           the router wrote the
//   whole file d 0 ok 1763680001 2.0.0 delivered+20to+20mailbox   (appended
//   results)
//
// The router writes everything up to `end` once, durably. After that the
// file only grows: a transport agent appends one `d` line per final result
// (delivered or failed) with a single O_APPEND write(2). A crash can leave
// a last line without its newline; parsers ignore it, and the recipient is
// simply tried again. Transient results are never written here: the
// scheduler keeps them in memory.
#ifndef ZM_MAIL_CONTROL_H_
#define ZM_MAIL_CONTROL_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace zm::mail {

struct ControlRecipient {
  int index = 0;        // 0..n-1, in file order
  std::string channel;  // "local", "smtp", "error", ...
  std::string host;     // thread key within the channel
  std::string user;     // what the agent delivers to: user, address,
                        // "|command", "/file", "/maildir/"
  std::string notify;   // DSN NOTIFY of the original recipient
  std::string orcpt;    // DSN ORCPT, decoded
  std::string orig;     // the envelope recipient this one came from
  std::string diag;     // router's diagnostic (the error channel's text)
};

enum class ResultStatus { kDelivered, kFailed };

struct ControlResult {
  int index = 0;
  ResultStatus status = ResultStatus::kDelivered;
  int64_t time = 0;  // unix seconds
  std::string dsn;   // enhanced status, "2.0.0" / "5.1.1"
  std::string diag;  // one line for humans and DSNs
};

struct ControlFile {
  std::string queue_id;
  uint64_t body_offset = 0;
  std::string sender;
  std::string error_to;
  std::string envid;
  std::string ret;
  std::vector<ControlRecipient> recipients;
  std::vector<ControlResult> results;  // in file order; last one wins
  int skipped_lines = 0;  // torn or malformed result lines that were ignored
};

// Everything through "end\n". Recipient indexes are taken as given.
std::string SerializeControl(const ControlFile& cf);

// One appended result line, ending in '\n'.
std::string SerializeResult(const ControlResult& r);

// DataLoss if `end` is missing (the router never finished the file);
// InvalidArgument, naming the line, for malformed content up to `end`.
// Malformed result lines after `end` (torn appends) are skipped and counted
// in skipped_lines.
absl::StatusOr<ControlFile> ParseControl(std::string_view file);

}  // namespace zm::mail

#endif  // ZM_MAIL_CONTROL_H_
