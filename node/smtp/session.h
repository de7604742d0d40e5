// zm::smtp::Session: the SMTP server protocol as an I/O-free state machine.
//
// The driver (the asio smtpserver, the stdio session of `sendmail -bs`,
// the unit tests) owns the socket and the spool; the Session owns the
// protocol. The driver feeds bytes and acts on what Step() asks for:
//
//   Session s(config, domains, client);
//   send(s.Greeting());
//   for (;;) {
//     switch (s.Step()) {
//       case Action::kNeedInput:   send(s.TakeOutput()); feed read() to
//                                  s.Input() (or s.InputEof()); break;
//       case Action::kFlush:       send(s.TakeOutput()); break;
//       case Action::kBeginMessage:  // DATA accepted so far
//         sub = spool.Begin(s.envelope());
//         s.MessageBegun(status, queue_id, now_usec); break;
//       case Action::kAppend:      sub->Append(s.TakeData()) (on error
//                                  s.AppendFailed(status)); break;
//       case Action::kCommit:      sub->Append(s.TakeData()); commit;
//                                  s.MessageCommitted(status); break;
//       case Action::kAbortMessage: drop sub; break;
//       case Action::kClose:       send(s.TakeOutput()); close; return;
//     }
//   }
//
// Replies accumulate in the output until the driver takes them, so a
// pipelined batch of commands (RFC 2920) is answered with one write: the
// driver flushes when the input runs dry (kNeedInput), when the session
// ends (kClose) and when the output grows past a bound (kFlush).
//
// States: greeting (no HELO yet) -> helo -> mail -> rcpt -> data. The
// "250 queued" reply exists only after MessageCommitted(OK): the driver
// must have made the message durable first (DESIGN.md invariant 1).
//
// Thread-compatible: one Session belongs to one session strand.
#ifndef ZM_SMTP_SESSION_H_
#define ZM_SMTP_SESSION_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "node/mail/envelope.h"
#include "node/smtp/command.h"
#include "node/smtp/line_reader.h"
#include "node/smtp/reply.h"

namespace zm::smtp {

// What the server offers and enforces; built once from smtpserver.conf
// and mail.conf, immutable while sessions use it.
struct SessionConfig {
  std::string hostname = "localhost";  // our name in replies and Received:
  std::string greeting;           // 220 text; "" -> "<hostname> ESMTP zmnode"
  std::vector<std::string> help;  // PARAM help lines; empty -> default
  uint64_t max_message_size = 10000000;   // maxsize; 0 = no limit
  uint64_t max_header_size = 256 * 1024;  // max-header-size
  size_t rcpt_limit = 10000;              // RcptLimitCount
  int max_unknown_commands = 10;          // then 421 and close; 0 = no limit
  // Extensions offered (each has a NoXXX disabler in smtpserver.conf).
  bool ehlo = true;
  bool pipelining = true;
  bool eightbitmime = true;
  bool size = true;
  bool dsn = true;
  bool enhanced_status_codes = true;
  bool smtputf8 = true;
  // End of data only as <CRLF>.<CRLF> (a bare-LF dot line is data): closes
  // the "SMTP smuggling" gap between front ends that disagree on it. Off
  // for local sessions on a terminal or pipe.
  bool strict_dot = true;
  // Recipients need a domain (except <postmaster>).
  bool require_domain = true;
};

// Which recipient domains this node accepts mail for. Implemented by the
// smtpserver over mail.conf and localnames; a fake in tests.
class LocalDomains {
 public:
  virtual ~LocalDomains() = default;
  // `domain` is lower-case, without a trailing dot.
  virtual bool IsLocal(std::string_view domain) const = 0;
};

struct ClientInfo {
  std::string addr;  // peer IP ("" for local submission)
  std::string port;
  std::string name;        // reverse DNS name; "" = unknown
  std::string local_addr;  // the address the client connected to
  bool trusted = false;    // may relay (trusted network, local user)
  std::string local_user;  // sendmail -bs: the submitting login
};

enum class Action {
  kNeedInput,
  kFlush,
  kBeginMessage,
  kAppend,
  kCommit,
  kAbortMessage,
  kClose,
};

class Session {
 public:
  enum class State { kGreeting, kHelo, kMail, kRcpt, kData, kClosed };

  // `config` and `domains` must outlive the Session.
  Session(const SessionConfig& config, const LocalDomains& domains,
          ClientInfo client);

  // The 220 banner (already formatted, with CRLF).
  std::string Greeting() const;

  void Input(std::string_view bytes) { reader_.Append(bytes); }
  // The client closed its side; Step() then answers kClose (dropping a
  // message in progress: nothing was acknowledged).
  void InputEof() { eof_ = true; }

  Action Step();

  std::string TakeOutput();
  bool HasOutput() const { return !out_.empty(); }
  // Message bytes (LF line endings, dot-unstuffed) not yet handed over.
  std::string TakeData();

  // After kBeginMessage: the envelope to submit.
  const mail::Envelope& envelope() const { return envelope_; }
  // After kBeginMessage: the spool's answer. OK -> 354 and the Received:
  // header (dated `now_usec`, naming `queue_id`) starts the data.
  void MessageBegun(const absl::Status& status, std::string_view queue_id,
                    int64_t now_usec);
  // After kAppend failed: the rest of the data is read and dropped, and
  // the final dot is answered with the spool error.
  void AppendFailed(const absl::Status& status);
  // After kCommit: OK -> "250 2.0.0 Ok: queued as QID".
  void MessageCommitted(const absl::Status& status);

  // Server shutdown: a session between transactions is told 421 4.3.2 and
  // closed at the next command boundary; one inside a transaction first
  // finishes it.
  void RequestStop() { stop_requested_ = true; }

  State state() const { return state_; }
  bool in_transaction() const {
    return state_ >= State::kMail && state_ <= State::kData;
  }
  const ClientInfo& client() const { return client_; }
  const std::string& helo() const { return helo_; }
  const std::string& queue_id() const { return queue_id_; }
  // The last reply sent to DATA's final dot, for the log.
  const Reply& last_reply() const { return last_reply_; }
  // Command counts "ehlo=1 mail=1 rcpt=2 data=1 quit=1 commands=6", for
  // the "disconnect from" log line.
  std::string Stats() const;

  // The extensions in the EHLO reply, in order (for tests and docs).
  std::vector<std::string> EhloKeywords() const;

 private:
  void Send(const Reply& r);
  void Send(ReplyId id, std::string_view text = {});
  Action HandleCommand(std::string_view line);
  Action DataLine(const LineReader::Line& line);
  Action EndOfData();
  void ResetTransaction();
  // What MAIL and RCPT parameters this session accepts (EHLO or HELO, and
  // the extensions the configuration enables).
  PathOptions PathOpts() const;
  void Count(std::string_view what);
  bool RecipientAllowed(std::string_view address) const;
  std::string ReceivedHeader(int64_t now_usec) const;

  const SessionConfig& config_;
  const LocalDomains& domains_;
  ClientInfo client_;
  LineReader reader_;
  State state_ = State::kGreeting;
  bool esmtp_ = false;
  bool eof_ = false;
  bool stop_requested_ = false;
  bool close_after_flush_ = false;
  int unknown_commands_ = 0;
  std::string helo_;
  std::string out_;
  mail::Envelope envelope_;
  std::string queue_id_;
  Reply last_reply_;
  std::vector<std::pair<std::string, int>> counts_;

  // DATA state.
  bool awaiting_begin_ = false;
  bool data_started_ = false;
  std::string data_;
  uint64_t data_size_ = 0;
  uint64_t header_size_ = 0;
  bool in_header_ = true;
  bool at_line_start_ = true;
  bool prev_crlf_ = true;
  bool too_big_ = false;
  bool header_too_big_ = false;
  absl::Status append_status_;
};

}  // namespace zm::smtp

#endif  // ZM_SMTP_SESSION_H_
