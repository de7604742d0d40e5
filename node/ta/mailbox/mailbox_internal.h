// Internals of the mailbox agent, shared between its files.
#ifndef ZM_TA_MAILBOX_MAILBOX_INTERNAL_H_
#define ZM_TA_MAILBOX_MAILBOX_INTERNAL_H_

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "node/ta/common/ta.h"

namespace zm::mailbox::internal {

// What gets stored: trace headers, then the message.
struct Content {
  std::string_view prefix;   // Return-Path: / Delivered-To: lines
  std::string_view message;  // RFC 5322, LF line endings
  std::string_view sender;   // envelope sender, "" = <>
};

// A uid/gid pair; `set` false means "leave as is".
struct Identity {
  bool set = false;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string name;
  std::string home;
};

// Maps a failed system call to a result: ENOSPC/EDQUOT -> deferred 4.2.2,
// ELOOP/EISDIR/ENOTDIR -> error 5.2.0, anything else -> deferred 4.3.0.
ta::Result ErrnoResult(int err, std::string_view what, std::string_view path,
                       std::string_view relay);

struct MboxRequest {
  std::string path;
  // A user's mailbox in the mail store: symlinks are refused, the file
  // must be a plain file with one link. /file targets of aliases may be
  // symlinks or character devices (/dev/null).
  bool strict = true;
  Identity owner;  // owner of a newly created mailbox (when root)
  int lock_timeout_s = 30;
  int dotlock_stale_s = 300;
  std::string relay;  // "local" or "file"
};
ta::Result DeliverMbox(const MboxRequest& req, const Content& c);

struct MaildirRequest {
  std::string dir;      // the Maildir (holding cur/ new/ tmp/)
  bool create = false;  // create the folders if missing
  Identity owner;       // owner of created folders and files (when root)
  std::string hostname;
  std::string relay;
};
ta::Result DeliverMaildir(const MaildirRequest& req, const Content& c);

struct PipeRequest {
  std::string command;           // without the leading '|'
  std::vector<std::string> env;  // NAME=value
  std::string cwd;
  Identity run_as;  // setgid/setuid in the child when set
  int timeout_s = 600;
};
ta::Result DeliverPipe(const PipeRequest& req, const Content& c);

// While alive, the process's effective uid/gid (and supplementary groups)
// are those of `id` (when id.set and running as root); restored after.
class ScopedIdentity {
 public:
  explicit ScopedIdentity(const Identity& id);
  ~ScopedIdentity();
  ScopedIdentity(const ScopedIdentity&) = delete;
  ScopedIdentity& operator=(const ScopedIdentity&) = delete;
  bool ok() const { return ok_; }

 private:
  bool switched_ = false;
  bool ok_ = true;
  gid_t egid_ = 0;
  std::vector<gid_t> groups_;
};

}  // namespace zm::mailbox::internal

#endif  // ZM_TA_MAILBOX_MAILBOX_INTERNAL_H_
