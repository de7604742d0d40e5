// Delivery status notifications (RFC 3464 multipart/report) the scheduler
// sends when a message's last recipient got its final result.
//
//   DsnRequest r;  r.queue_id = ...; r.recipients.push_back({...});
//   std::string msg = RenderDsn(r);   // an RFC 5322 message, LF endings
//
// Pure functions; the caller decides whom to notify (WantsDsn) and submits
// the message with the null sender through zm::spool.
#ifndef ZM_SCHEDULER_SCHEDULER_DSN_H_
#define ZM_SCHEDULER_SCHEDULER_DSN_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace zm::scheduler {

struct DsnRecipient {
  std::string final_recipient;     // address, e.g. "bob@example.net"
  std::string original_recipient;  // ORCPT as given ("rfc822;bob@..."), or ""
  std::string action;              // "failed", "delivered"
  std::string status;              // "5.1.1"
  std::string diagnostic;          // one line
  std::string remote_mta;          // relay, "" for local
  int64_t last_attempt = 0;        // unix seconds
  int64_t will_retry_until = 0;    // "delayed": when it expires (unix s)
};

struct DsnRequest {
  std::string queue_id;  // of the original message
  std::string hostname;  // this MTA
  std::string original_sender;
  std::string envid;    // ENVID, "" if none
  std::string ret;      // "FULL" returns the whole message
  int64_t arrival = 0;  // unix seconds
  int64_t now = 0;
  std::vector<DsnRecipient> recipients;
  std::string_view original;        // the original RFC 5322 message
  size_t max_full_bytes = 1 << 20;  // larger: headers only even with FULL
};

// Whether a recipient with DSN NOTIFY `notify` ("" = default) is reported
// when it ended `failed` (true) or delivered (false).
bool WantsDsn(std::string_view notify, bool failed);

// Whether a recipient with NOTIFY `notify` gets a delay report ("delayed").
// No NOTIFY: yes (this MTA's default is FAILURE,DELAY, RFC 3461 4.1).
bool WantsDelayDsn(std::string_view notify);

// A report whose recipients are all "delayed" is a delay warning: its own
// subject and text, and only the original's headers are attached.

std::string RenderDsn(const DsnRequest& r);

}  // namespace zm::scheduler

#endif  // ZM_SCHEDULER_SCHEDULER_DSN_H_
