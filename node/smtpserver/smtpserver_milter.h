// zm::smtpserver::MilterSession: the `PARAM milter` filters of one SMTP
// session (docs/milter.md).
//
//   PARAM milter dkim inet:127.0.0.1:8891 timeout=10 default=accept
//   PARAM milter spam unix:/run/rspamd/milter.sock listeners=smtp
//
// The milters whose listeners= include the session's listener are asked in
// file order, each over one connection for the whole session (opened at
// the connect check, reused by every transaction). The driver asks after
// the policy checks accepted:
//
//   auto ms = MilterSession::Make(config.milters, listener, hostname, log);
//   ...
//   smtp::Verdict v = checks.Decide(session, check);
//   if (ms) v = ms->Check(session, check, std::move(v));   // worker thread
//   ...
//   if (ms && ms->TakeDiscard()) { drop the message, answer 250 }
//
// connect/helo/mail/rcpt/data go to the milters at those checks; at the
// kMessage check the staged file is streamed (headers, end of headers,
// body in bounded CRLF chunks, end of message) and the modifications a
// milter asks for (headers, sender, recipients, body) rewrite the staged
// file, durably and under the same queue id, before the driver commits it.
// A reject or tempfail becomes that command's reply; discard accepts and
// drops the message; quarantine freezes it with the milter's reason. A
// milter that is down, hangs past its timeouts or answers nonsense gets its
// default=: tempfail (451 4.7.1 from the next MAIL on, for the rest of the
// session) or accept (the milter is skipped for the session); either is
// logged with the queue id.
//
// Not thread-safe: the driver runs one check of a session at a time.
#ifndef ZM_SMTPSERVER_SMTPSERVER_MILTER_H_
#define ZM_SMTPSERVER_SMTPSERVER_MILTER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "node/common/log.h"
#include "node/mail/envelope.h"
#include "node/milter/client.h"
#include "node/smtp/check.h"

namespace zm::smtp {
class Session;
}

namespace zm::smtpserver {

// "smtp", "submission", "smtps", "local".
std::string ListenerName(smtp::Listener l);

class MilterSession {
 public:
  // nullptr when no milter applies to `listener`. `log` must outlive it.
  static std::unique_ptr<MilterSession> Make(
      const std::vector<milter::Spec>& specs, smtp::Listener listener,
      std::string hostname, Logger& log);
  ~MilterSession();

  // The milters' say on `check`, given the policy's verdict (returned as
  // is when it rejects). kMessage needs check.staged_path and queue_id.
  smtp::Verdict Check(const smtp::Session& session, const smtp::Check& check,
                      smtp::Verdict policy);

  // True once after a kMessage check whose message a milter discarded.
  bool TakeDiscard();

  struct Entry;  // one milter's connection and state (smtpserver_milter.cc)

 private:
  MilterSession(std::string hostname, Logger& log);

  smtp::Verdict Stage(const smtp::Session& session, const smtp::Check& check,
                      smtp::Verdict v);
  smtp::Verdict Message(const smtp::Session& session, const smtp::Check& check,
                        smtp::Verdict v);

  std::string hostname_;
  Logger& log_;
  std::vector<std::unique_ptr<Entry>> entries_;
  bool discard_session_ = false;  // a milter discarded at connect/helo
  bool discard_ = false;          // ... in this transaction
  bool discard_taken_ = false;
};

// Header and envelope changes a milter asked for at end of message,
// applied to a staged message file. Exposed for tests.
struct StagedEdits {
  std::vector<milter::Modification> headers;   // add/insert/change, in order
  std::vector<milter::Modification> envelope;  // from/rcpt changes
  std::string body_path;       // a replacement body (LF endings); "" = keep
  bool leading_space = false;  // header values carry their leading space
};

// Rewrites the message file at `path` (envelope, then the message) with
// `edits`: the result is written beside it, fsynced and renamed over it,
// so a crash leaves either the old or the new file. `*recipients` receives
// the number of recipients left. The caller holds the original's lock.
//
// For a spool::Submission's staged file this must come after everything
// written through the Submission (Append, PrependToMessage): its
// descriptor still points at the replaced file, so later writes through
// it would be lost. Its Prepare() then only patches the old file's size
// field, and Publish() renames the path, i.e. the rewritten file.
absl::Status RewriteStaged(const std::string& path, const StagedEdits& edits,
                           size_t* recipients, std::vector<std::string>* log);

}  // namespace zm::smtpserver

#endif  // ZM_SMTPSERVER_SMTPSERVER_MILTER_H_
