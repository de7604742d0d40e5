// zm::smtp::Session: the SMTP server protocol as an I/O-free state machine.
//
// The driver (the asio smtpserver, the stdio session of `sendmail -bs`,
// the unit tests, the fuzzer) owns the socket, the spool and the policy;
// the Session owns the protocol. The driver feeds bytes and acts on what
// Step() asks for:
//
//   Session s(config, client);
//   s.SetGreeting(hdr220_text);          // optional, before the first Step
//   for (;;) {
//     switch (s.Step()) {
//       case Action::kNeedInput:   wait TakeDelayMs(); send(s.TakeOutput());
//                                  feed read() to s.Input() (or
//                                  s.InputEof()); break;
//       case Action::kFlush:       wait TakeDelayMs(); send(TakeOutput());
//                                  break;
//       case Action::kCheck:       // a policy decision, see check.h
//         Check c = s.pending_check();
//         if (c.kind == CheckKind::kMessage) {   // the data is complete
//           sub->Append(s.TakeData()); c.staged_path = ...;
//           c.queue_id = sub->queue_id();
//         }
//         s.CheckDone(checks.Decide(s, c)); break;
//       case Action::kStartTls:    wait TakeDelayMs(); send(TakeOutput());
//                                  handshake; s.TlsStarted(info) or
//                                  s.TlsFailed(); break;
//       case Action::kBeginMessage:  // DATA / first BDAT accepted so far
//         sub = spool.Begin(s.envelope());
//         s.MessageBegun(status, queue_id, now_usec); break;
//       case Action::kAppend:      sub->Append(s.TakeData()) (on error
//                                  s.AppendFailed(status)); break;
//       case Action::kCommit:      sub->Append(s.TakeData()); commit (to
//                                  the freezer if s.frozen());
//                                  s.MessageCommitted(status); break;
//       case Action::kAbortMessage: drop sub; break;
//       case Action::kClose:       send(s.TakeOutput()); close; return;
//     }
//   }
//
// The greeting: the very first Step() asks the kConnect check; on accept
// the Session itself puts "220 <greeting>" into the output (so the driver
// never writes a banner of its own), on reject the verdict's reply takes
// its place (RFC 5321 3.1: then only QUIT is served). On port 465 the
// driver finishes the TLS handshake before the first Step() and says so in
// ClientInfo (tls, tls_info).
//
// Replies accumulate in the output until the driver takes them, so a
// pipelined batch of commands (RFC 2920) is answered with one write: the
// driver flushes when the input runs dry (kNeedInput), before a TLS
// handshake (kStartTls), when the session ends (kClose) and when the
// output grows past a bound (kFlush). Before writing it waits
// TakeDelayMs() (the tarpit and the verdicts' delays).
//
// STARTTLS (RFC 3207): after kStartTls the output ends with "220 2.0.0
// Ready to start TLS"; the driver flushes it and handshakes. TlsStarted()
// throws away every byte received before the handshake (STARTTLS command
// injection) and returns the session to the greeting-less state: HELO,
// AUTH and the transaction are forgotten.
//
// States: greeting (no HELO yet) -> helo -> mail -> rcpt -> data. The
// "250 queued" reply exists only after MessageCommitted(OK): the driver
// must have made the message durable first (DESIGN.md invariant 1).
//
// Thread-compatible: one Session belongs to one session strand.
#ifndef ZM_SMTP_SESSION_H_
#define ZM_SMTP_SESSION_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "node/mail/envelope.h"
#include "node/smtp/check.h"
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
  bool chunking = true;  // CHUNKING, BDAT (RFC 3030)
  bool dsn = true;
  bool etrn = true;  // ETRN (RFC 1985), answered through the kEtrn check
  bool enhanced_status_codes = true;
  bool smtputf8 = true;
  bool deliverby = true;           // DELIVERBY (RFC 2852), BY= kept
  uint32_t deliverby_min_sec = 0;  // advertised minimum; 0 = none shown
  // STARTTLS is offered when the driver can do TLS (a certificate is
  // configured) and the session is not already under TLS.
  bool starttls = false;
  // AUTH PLAIN LOGIN (RFC 4954): offered under TLS, or without TLS too
  // when auth_without_tls (AUTH-LOGIN-also-without-TLS).
  bool auth = true;
  bool auth_without_tls = false;
  // VRFY and EXPN are answered (through their checks) only when enabled;
  // otherwise 502 5.5.1.
  bool vrfy = false;
  bool expn = false;
  // The HELO style flags a session starts with, before any check's
  // verdict sets others (ZMailer's letters; "R" = strict RFC 5321 syntax).
  std::string style_flags = "R";
  // End of data only as <CRLF>.<CRLF> (a bare-LF dot line is data): closes
  // the "SMTP smuggling" gap between front ends that disagree on it. With
  // it, a message holding a bare CR or bare LF is refused at its end (550
  // 5.6.0, RFC 5321 2.3.8) unless bare_newline_normalise, which stores a
  // bare LF as a line end and drops a bare CR. Off for local sessions on a
  // terminal or pipe (bare LF is their line end).
  bool strict_dot = true;
  bool bare_newline_normalise = false;
  // Recipients need a domain (except <postmaster>).
  bool require_domain = true;
  // Tarpit (PARAM tarpit initial exponent max): every 4xx/5xx reply makes
  // the driver wait before its next write: the first one initial_ms, then
  // prev + prev * exponent, at most max_ms. initial_ms 0 = off.
  uint32_t tarpit_initial_ms = 0;
  double tarpit_exponent = 0;
  uint32_t tarpit_max_ms = 0;
  // Received: header comment parts (PARAM rcvd-...).
  bool rcvd_ident = false;      // the client's ident (ClientInfo.ident)
  bool rcvd_auth_user = false;  // the AUTH user
  bool rcvd_tls_mode = false;   // TLS version and cipher
  bool rcvd_tls_ccert = false;  // the client certificate's subject
  // MSA-mode: AUTH is required before MAIL on the smtp listener too
  // (it always is on submission and smtps) unless the client may relay.
  bool msa_mode = false;
  // no-multiline-replies: every reply but EHLO's is one line (its last),
  // for clients that cannot read continuation lines.
  bool no_multiline_replies = false;
};

struct ClientInfo {
  std::string addr;  // peer IP ("" for local submission)
  std::string port;
  std::string name;        // forward-confirmed reverse DNS name; "" = unknown
  std::string local_addr;  // the address the client connected to
  std::string ident;       // RFC 1413 answer, if the driver asked
  bool trusted = false;    // may relay (trusted network, local user)
  std::string local_user;  // sendmail -bs: the submitting login
  Listener listener = Listener::kSmtp;
  // A DNS blocklist zone that lists the client's address, and its TXT
  // text ("" = not listed, or not looked up); the driver looks these up
  // before the session starts, the Checks decide what it means.
  std::string dnsbl_zone;
  std::string dnsbl_text;
  // Under TLS from the start (port 465); tls_info describes it.
  bool tls = false;
  TlsInfo tls_info;
};

enum class Action {
  kNeedInput,
  kFlush,
  kCheck,  // pending_check() needs a verdict: CheckDone()
  kStartTls,
  kBeginMessage,
  kAppend,
  kCommit,
  kAbortMessage,
  kClose,
};

class Session {
 public:
  enum class State { kGreeting, kHelo, kMail, kRcpt, kData, kClosed };

  // `config` must outlive the Session.
  Session(const SessionConfig& config, ClientInfo client);

  // This connection's 220 text (hdr220 with its metatags expanded), in
  // place of config.greeting; call before the first Step().
  void SetGreeting(std::string text) { greeting_ = std::move(text); }
  // The 220 banner (formatted, with CRLF) the Session sends once the
  // kConnect check accepted.
  std::string Greeting() const;

  void Input(std::string_view bytes) { reader_.Append(bytes); }
  // Bytes of a line that is not complete yet (a command being typed).
  size_t buffered_input() const { return reader_.buffered(); }
  // The client closed its side; Step() then answers kClose (dropping a
  // message in progress: nothing was acknowledged).
  void InputEof() { eof_ = true; }

  Action Step();

  std::string TakeOutput();
  bool HasOutput() const { return !out_.empty(); }
  // Milliseconds the driver waits before its next write (tarpit, verdict
  // delays); resets to 0.
  uint32_t TakeDelayMs();
  // Message bytes (LF line endings, dot-unstuffed) not yet handed over.
  std::string TakeData();

  // After kCheck: what to decide (a copy is safe to keep).
  const Check& pending_check() const { return check_; }
  // The driver's decision on pending_check().
  void CheckDone(Verdict verdict);

  // After kStartTls: the handshake succeeded (the Session forgets the
  // HELO and any buffered input) or failed (the session closes).
  void TlsStarted(TlsInfo info);
  void TlsFailed();

  // After kBeginMessage: the envelope to submit.
  const mail::Envelope& envelope() const { return envelope_; }
  // After kBeginMessage: the spool's answer. OK -> 354 (or the BDAT chunk
  // is read) and the Received: header (dated `now_usec`, naming
  // `queue_id`) starts the data.
  void MessageBegun(const absl::Status& status, std::string_view queue_id,
                    int64_t now_usec);
  // After kAppend failed: the rest of the data is read and dropped, and
  // the end of data is answered with the spool error.
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
  bool esmtp() const { return esmtp_; }
  const std::string& queue_id() const { return queue_id_; }
  // The HELO style flags in force ("veR"); Checks read them (v: verify
  // senders, e: verify recipients, R: strict syntax, ...).
  const std::string& style_flags() const { return style_; }
  bool HasStyle(char flag) const {
    return style_.find(flag) != std::string::npos;
  }
  // Under TLS (STARTTLS done, or port 465), and what the handshake said.
  bool tls() const { return tls_; }
  const TlsInfo& tls_info() const { return tls_info_; }
  // The AUTH identity once authenticated; "" before.
  const std::string& auth_user() const { return auth_user_; }
  bool authenticated() const { return !auth_user_.empty(); }
  // The client may relay: trusted, or a verdict allowed it (kConnect,
  // kAuth), or authenticated.
  bool relay_allowed() const { return relay_allowed_ || authenticated(); }
  // The message was given a kFreeze verdict: commit it to the freezer.
  bool frozen() const { return frozen_; }
  const std::string& freeze_reason() const { return freeze_reason_; }
  // The last reply sent to DATA's final dot, for the log.
  const Reply& last_reply() const { return last_reply_; }
  // Command counts "ehlo=1 mail=1 rcpt=2 data=1 quit=1 commands=6", for
  // the "disconnect from" log line.
  std::string Stats() const;

  // The extensions in the EHLO reply, in order (for tests and docs).
  std::vector<std::string> EhloKeywords() const;

 private:
  enum class AuthStage { kNone, kPlain, kLoginUser, kLoginPassword };

  // keep_lines: a multi-line reply even under no_multiline_replies (EHLO).
  void Send(const Reply& r, bool keep_lines = false);
  void Send(ReplyId id, std::string_view text = {});
  Action Ask(CheckKind kind, std::string arg);
  Action HandleCommand(std::string_view line, bool long_line);
  Action Helo(const Command& c);
  Action Mail(const Command& c);
  Action Rcpt(const Command& c);
  Action Data(const Command& c);
  Action Bdat(const Command& c);
  Action Auth(const Command& c);
  Action AuthResponse(std::string_view line);
  Action AuthDecoded(std::string_view user, std::string_view password,
                     std::string_view authzid);
  Action Etrn(const Command& c);
  Action VrfyExpn(const Command& c);
  Action StartTls(const Command& c);
  Action Bad(ReplyId id, std::string_view text = {});
  Action DataLine(const LineReader::Line& line);
  Action BdatBytes();
  void BodyLine(std::string_view text, bool complete);
  void BodyBytes(std::string_view bytes);
  Action EndOfData();
  Action ChunkDone();
  void StartData();
  void ResetTransaction();
  void FillEnvelope();
  // What MAIL and RCPT parameters this session accepts (EHLO or HELO, and
  // the extensions the configuration enables).
  PathOptions PathOpts() const;
  bool AuthOffered() const;
  void Count(std::string_view what);
  std::string ReceivedHeader(int64_t now_usec) const;

  const SessionConfig& config_;
  ClientInfo client_;
  LineReader reader_;
  std::string greeting_;
  State state_ = State::kGreeting;
  bool connected_ = false;  // the kConnect check was asked
  bool refused_ = false;    // kConnect rejected: only QUIT is served
  bool esmtp_ = false;
  bool eof_ = false;
  bool stop_requested_ = false;
  bool close_after_flush_ = false;
  bool starttls_pending_ = false;
  int unknown_commands_ = 0;
  std::string helo_;
  std::string style_;
  std::string out_;
  uint32_t delay_ms_ = 0;   // owed before the next write
  uint32_t tarpit_ms_ = 0;  // current tarpit step
  bool tls_ = false;
  TlsInfo tls_info_;
  bool relay_allowed_ = false;
  std::string auth_user_;
  AuthStage auth_stage_ = AuthStage::kNone;
  std::string auth_login_user_;
  mail::Envelope envelope_;
  std::string queue_id_;
  Reply last_reply_;
  std::vector<std::pair<std::string, int>> counts_;

  // The check being asked and what to do with its answer.
  std::optional<CheckKind> pending_;  // the check the driver owes us
  Check check_;
  bool pending_ehlo_ = false;  // kHelo: EHLO rather than HELO
  PathResult path_;            // kMail/kRcpt: the parsed command

  // DATA / BDAT state.
  bool awaiting_begin_ = false;
  bool data_started_ = false;
  bool end_of_data_ = false;    // the message check passed: commit next
  bool abort_pending_ = false;  // tell the driver kAbortMessage next
  bool bdat_ = false;           // this transaction uses BDAT
  bool bdat_reading_ = false;   // the chunk's bytes are being read
  bool bdat_last_ = false;      // the chunk being read is the last
  bool bdat_discard_ = false;   // read the chunk and drop it
  uint64_t bdat_remaining_ = 0;
  uint64_t bdat_chunk_ = 0;         // size of the chunk being read
  bool bdat_cr_ = false;            // a chunk ended in CR
  std::optional<Reply> bdat_fail_;  // sent once the chunk is read
  bool frozen_ = false;
  std::string freeze_reason_;
  std::string data_;
  uint64_t data_size_ = 0;
  uint64_t header_size_ = 0;
  bool in_header_ = true;
  bool at_line_start_ = true;
  bool prev_crlf_ = true;
  bool too_big_ = false;
  bool header_too_big_ = false;
  bool bare_newline_ = false;
  absl::Status append_status_;
};

}  // namespace zm::smtp

#endif  // ZM_SMTP_SESSION_H_
