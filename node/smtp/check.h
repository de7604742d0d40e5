// zm::smtp checks: the decisions a Session asks its driver for.
//
// The Session knows SMTP; it does not know policy, rate limits, who the
// local users are, how to verify a password or what a content filter says.
// At each decision point Step() returns Action::kCheck; the driver reads
// Session::pending_check(), asks its Checks (possibly on a worker thread:
// lookups may touch RocksDB, an AUTH pipe or a filter program), and hands
// the answer back with Session::CheckDone(verdict):
//
//   case Action::kCheck: {
//     smtp::Check c = s.pending_check();          // a copy: safe to move
//     smtp::Verdict v = co_await OnPool(checks.Decide(s, c));
//     s.CheckDone(std::move(v));
//     break;
//   }
//
// A check whose Quick() is true may be decided on the driver's own thread.
//
// Accept means "go on as the protocol says" (the Session sends its own
// positive reply unless the verdict carries one); Reject sends the
// verdict's reply (4xx or 5xx, with its enhanced code) and the command
// has no effect; Freeze accepts, and the message goes to the freezer
// instead of the router.
//
// Value types only; thread-compatible.
#ifndef ZM_SMTP_CHECK_H_
#define ZM_SMTP_CHECK_H_

#include <cstdint>
#include <optional>
#include <string>

#include "node/smtp/command.h"
#include "node/smtp/reply.h"

namespace zm::smtp {

enum class CheckKind {
  kConnect,   // before the greeting; a reject is sent instead of 220
  kHelo,      // HELO/EHLO; arg = the name given
  kAuth,      // AUTH credentials decoded; mechanism, user, password, authzid
  kMailFrom,  // arg = sender ("" for the null path); mail = its parameters
  kRcptTo,    // arg = recipient; rcpt = its parameters. Relay control
              // lives here, not in the Session.
  kData,      // DATA or the first BDAT of a transaction, before 354 / the
              // chunk is read; the envelope is complete
  kMessage,   // the message is staged (durable, not yet committed):
              // content filter; staged_path names the message file
  kEtrn,      // arg = the ETRN argument as given ("dom", "@dom", "#q")
  kVrfy,      // arg = the VRFY argument
  kExpn,      // arg = the EXPN argument
};

struct Check {
  CheckKind kind = CheckKind::kConnect;
  std::string arg;
  // kAuth.
  std::string mechanism;  // "PLAIN", "LOGIN"
  std::string user;       // authentication identity
  std::string password;
  std::string authzid;    // PLAIN's authorization identity ("" = none)
  // kMailFrom / kRcptTo.
  MailParams mail;
  RcptParams rcpt;
  // kMessage: filled in by the driver, which owns the submission.
  std::string staged_path;
  std::string queue_id;
  uint64_t message_size = 0;  // bytes of the message (no envelope)
};

struct Verdict {
  enum class Outcome { kAccept, kReject, kFreeze };
  Outcome outcome = Outcome::kAccept;
  // kReject: the reply to send (required). kAccept: replaces the
  // Session's positive reply when set (VRFY's 250/252, ETRN's 250/458).
  std::optional<Reply> reply;
  // After sending the reply, answer nothing more and close (421 cases).
  bool close = false;
  // Tarpit: the driver waits this long before sending the reply.
  uint32_t delay_ms = 0;
  // kConnect/kHelo: the style flags of the matching smtpserver.conf
  // HELO pattern line ("ftveR"); "" leaves the current flags unchanged.
  std::string style_flags;
  // kConnect/kAuth: the client may relay from now on (trusted network,
  // authenticated user).
  bool relay_allowed = false;
  // kAuth accepted: the authenticated user name, kept in the envelope
  // and in the Received: header (rcvd-auth-user).
  std::string auth_user;
  // kFreeze: why (logged; kept with the frozen message).
  std::string freeze_reason;
  // kMessage accepted or frozen: whole header lines ("Name: value\n")
  // the driver puts at the top of the staged message before it commits
  // (Authentication-Results:, DKIM-Signature:).
  std::string prepend_headers;

  static Verdict Accept() { return Verdict{}; }
  static Verdict Reject(Reply r, bool close_after = false) {
    Verdict v;
    v.outcome = Outcome::kReject;
    v.reply = std::move(r);
    v.close = close_after;
    return v;
  }
};

// What the driver learnt about TLS once a handshake finished; the
// Session uses it for the Received: header and to allow AUTH.
struct TlsInfo {
  std::string version;       // "TLSv1.3"
  std::string cipher;        // "TLS_AES_256_GCM_SHA384"
  int bits = 0;              // symmetric key bits
  std::string peer_subject;  // client certificate subject; "" = none
  bool peer_verified = false;
  bool resumed = false;
};

// Which listener a connection came in on.
enum class Listener {
  kSmtp,        // port 25 (BindPort): MX and relay
  kSubmission,  // port 587: MSA, AUTH required outside trusted networks
  kSmtps,       // port 465: implicit TLS, otherwise like kSubmission
  kLocal,       // sendmail -bs
};

class Session;

// The driver's decision maker. The smtpserver's implementation combines
// smtp-policy, the rate-tracker, recipient verification, AUTH and the
// content filter; BasicChecks (basic_checks.h) is the policy of a trusted
// local submission and of unit tests.
class Checks {
 public:
  enum class Event {
    kCommitted,  // a message was acknowledged (250 after the final dot)
    kAborted,    // a transaction ended without a message (RSET, EOF
                 // mid-DATA, a rejected message)
  };

  virtual ~Checks() = default;
  // Thread-safe. May block briefly; the smtpserver calls it on a worker
  // thread, never on an I/O thread. `session` is not touched by anyone
  // else meanwhile.
  virtual Verdict Decide(const Session& session, const Check& check) = 0;
  // Whether Decide(session, check) needs no blocking work this time (no
  // file, database, DNS, socket or program): then a driver may decide on
  // its I/O thread instead of handing the check to a worker. Must not
  // block itself. Default: never.
  virtual bool Quick(const Session& session, const Check& check) {
    (void)session;
    (void)check;
    return false;
  }
  // For counting (rate-tracker); thread-safe, must not block.
  virtual void Record(const Session& session, Event event) {
    (void)session;
    (void)event;
  }
};

}  // namespace zm::smtp

#endif  // ZM_SMTP_CHECK_H_
