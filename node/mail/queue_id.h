// Queue ids: the name of a message everywhere (spool file names, control
// files, logs, mailq, DSNs), unique across restarts and across a fleet.
//
//   0GC4H8WY3TQ2K7PX-mx1
//   \_____________/ \_/
//   time + sequence  node tag
//
// The first 16 characters are Crockford base32: 11 for the microsecond
// clock, 5 for a per-process random start plus a counter, so ids sort by
// arrival and two processes on one node practically never meet; the spool
// still creates each file with O_EXCL and retries on a clash, so a clock
// stepping back cannot reuse an id. The tag after '-' is the node id
// (letters, digits, '_' only; at most 24), which keeps ids from different
// nodes apart when messages or logs meet.
#ifndef ZM_MAIL_QUEUE_ID_H_
#define ZM_MAIL_QUEUE_ID_H_

#include <string>
#include <string_view>

namespace zm::mail {

// Reduces a configured node id to the characters a queue id may carry.
std::string NodeTag(std::string_view node_id);

// A fresh id. Thread-safe.
std::string NewQueueId(std::string_view node_tag);

// True for strings of the shape NewQueueId() makes; used to refuse stray
// names found in spool folders and bad ids from the admin interface.
bool IsQueueId(std::string_view id);

}  // namespace zm::mail

#endif  // ZM_MAIL_QUEUE_ID_H_
