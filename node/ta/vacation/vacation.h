// vacation: answers mail with an absence message, following RFC 3834.
//
//   # ~/.forward (router.conf forward yes)
//   \alice, "|vacation -m /home/alice/.vacation.msg alice"
//
//   vacation [-r DAYS] [-m MSGFILE] [-d DBFILE] [-a ALIAS]... USER
//
// Reads the message on stdin; the envelope sender comes from $SENDER (the
// mailbox agent sets it). No reply (RFC 3834 section 2) to the null
// sender, to MAILER-DAEMON/postmaster/owner-*/*-request/list senders, to
// a message with `Auto-Submitted:` other than `no`, `Precedence:
// bulk/list/junk`, or any `List-*` header, nor when USER (or an ALIAS)
// is not in To:/Cc:; at most one reply per sender per DAYS (default 7),
// remembered in DBFILE (default MSGFILE.db). The reply has the null
// envelope sender, `Auto-Submitted: auto-replied`, `In-Reply-To:` and
// `References:`, and goes out through sendmail (the sibling program).
// Exit 0 whenever the message was read (a vacation problem never bounces
// the mail); 64 on usage errors.
#ifndef ZM_TA_VACATION_VACATION_H_
#define ZM_TA_VACATION_VACATION_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace zm::vacation {

struct Options {
  std::string user;
  std::vector<std::string> aliases;
  int64_t interval_sec = 7 * 86400;
  std::string message_file;
  std::string db_file;
};

// Why no reply is sent, or nullopt: reply. `headers` is the header block.
std::optional<std::string> SkipReason(const Options& opts,
                                      std::string_view sender,
                                      std::string_view headers);

// The reply message (headers and body) from the vacation message file's
// text (its own Subject: header if it starts with one).
std::string BuildReply(const Options& opts, std::string_view sender,
                       std::string_view headers, std::string_view text,
                       std::string_view own_address);

// True if `sender` was answered within the interval (per `db` text, lines
// "address unix-time"); returns the updated db text in *updated.
bool RecentlyAnswered(std::string_view db, std::string_view sender,
                      int64_t now, int64_t interval, std::string* updated);

int Main(int argc, char** argv);

}  // namespace zm::vacation

#endif  // ZM_TA_VACATION_VACATION_H_
