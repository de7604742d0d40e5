#include "node/smtp/session.h"

#include <algorithm>
#include <optional>

#include "node/common/strings.h"
#include "node/mail/rfc5322.h"
#include "node/smtp/sasl.h"

namespace zm::smtp {
namespace {

// Output beyond this is flushed before more input is read, so a client
// that pipelines without reading cannot grow our buffer without bound.
constexpr size_t kFlushBytes = 16 * 1024;
// Message bytes handed to the spool in chunks of about this size.
constexpr size_t kAppendBytes = 64 * 1024;
// The tarpit never makes one write wait longer than this.
constexpr uint32_t kMaxDelayMs = 10 * 60 * 1000;

std::string Sanitize(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    out += (c < 33 || c > 126 || c == '(' || c == ')') ? '?'
                                                       : static_cast<char>(c);
  }
  return out;
}

// Text safe inside an RFC 5322 comment (spaces kept).
std::string CommentText(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    out += (c < 32 || c > 126 || c == '(' || c == ')' || c == '\\')
               ? '?'
               : static_cast<char>(c);
  }
  return out;
}

Reply SimpleReply(int code, std::string_view enhanced, std::string text) {
  Reply r;
  r.code = code;
  r.enhanced = std::string(enhanced);
  r.lines.push_back(std::move(text));
  return r;
}

}  // namespace

Session::Session(const SessionConfig& config, ClientInfo client)
    : config_(config),
      client_(std::move(client)),
      reader_(kMaxAuthLine),
      style_(config.style_flags),
      tls_(client_.tls),
      tls_info_(client_.tls_info),
      relay_allowed_(client_.trusted) {}

std::string Session::Greeting() const {
  std::string text = !greeting_.empty() ? greeting_
                     : config_.greeting.empty()
                         ? StrCat(config_.hostname, " ESMTP zmnode")
                         : config_.greeting;
  return StrCat("220 ", text, "\r\n");
}

std::string Session::TakeOutput() {
  std::string out;
  out.swap(out_);
  return out;
}

uint32_t Session::TakeDelayMs() {
  uint32_t d = delay_ms_;
  delay_ms_ = 0;
  return d;
}

std::string Session::TakeData() {
  std::string out;
  out.swap(data_);
  return out;
}

void Session::Send(const Reply& r, bool keep_lines) {
  if (config_.no_multiline_replies && r.lines.size() > 1 && !keep_lines) {
    // The last line carries the reply's meaning (EHLO is exempt: its lines
    // are the extensions).
    Reply one = r;
    one.lines.erase(one.lines.begin(), one.lines.end() - 1);
    out_ += one.Format(config_.enhanced_status_codes);
  } else {
    out_ += r.Format(config_.enhanced_status_codes);
  }
  if (r.code >= 400 && config_.tarpit_initial_ms > 0) {
    if (tarpit_ms_ == 0) {
      tarpit_ms_ = config_.tarpit_initial_ms;
    } else {
      double next = tarpit_ms_ + tarpit_ms_ * config_.tarpit_exponent;
      uint32_t cap =
          config_.tarpit_max_ms ? config_.tarpit_max_ms : kMaxDelayMs;
      tarpit_ms_ = next >= cap ? cap : static_cast<uint32_t>(next);
    }
    delay_ms_ =
        std::min<uint64_t>(uint64_t{delay_ms_} + tarpit_ms_, kMaxDelayMs);
  }
}

void Session::Send(ReplyId id, std::string_view text) {
  Send(MakeReply(id, text));
}

void Session::Count(std::string_view what) {
  for (auto& [name, n] : counts_) {
    if (name == what) {
      ++n;
      return;
    }
  }
  counts_.emplace_back(std::string(what), 1);
}

std::string Session::Stats() const {
  std::string out;
  int total = 0;
  for (const auto& [name, n] : counts_) {
    StrAppend(&out, name, "=", n, " ");
    total += n;
  }
  StrAppend(&out, "commands=", total);
  return out;
}

bool Session::AuthOffered() const {
  return config_.auth && (tls_ || config_.auth_without_tls);
}

std::vector<std::string> Session::EhloKeywords() const {
  std::vector<std::string> k;
  if (config_.pipelining) k.push_back("PIPELINING");
  if (config_.size) {
    k.push_back(config_.max_message_size
                    ? StrCat("SIZE ", config_.max_message_size)
                    : std::string("SIZE"));
  }
  if (config_.eightbitmime) k.push_back("8BITMIME");
  if (config_.chunking) k.push_back("CHUNKING");
  if (config_.dsn) k.push_back("DSN");
  if (config_.etrn) k.push_back("ETRN");
  if (config_.enhanced_status_codes) k.push_back("ENHANCEDSTATUSCODES");
  if (config_.starttls && !tls_) k.push_back("STARTTLS");
  if (AuthOffered()) k.push_back("AUTH PLAIN LOGIN");
  if (config_.deliverby) {
    k.push_back(config_.deliverby_min_sec
                    ? StrCat("DELIVERBY ", config_.deliverby_min_sec)
                    : std::string("DELIVERBY"));
  }
  if (config_.smtputf8 && config_.eightbitmime) k.push_back("SMTPUTF8");
  k.push_back(StrCat("X-RCPTLIMIT ", config_.rcpt_limit));
  return k;
}

PathOptions Session::PathOpts() const {
  PathOptions o;
  o.ext.esmtp = esmtp_;
  o.ext.size = config_.size;
  o.ext.eightbitmime = config_.eightbitmime;
  o.ext.dsn = config_.dsn;
  o.ext.smtputf8 = config_.smtputf8 && config_.eightbitmime;
  o.ext.auth = AuthOffered();
  o.ext.deliverby = config_.deliverby;
  o.require_domain = config_.require_domain;
  o.sloppy = !HasStyle('R');
  return o;
}

void Session::ResetTransaction() {
  envelope_ = mail::Envelope();
  awaiting_begin_ = false;
  data_started_ = false;
  end_of_data_ = false;
  bdat_ = false;
  bdat_reading_ = false;
  bdat_last_ = false;
  bdat_discard_ = false;
  bdat_remaining_ = 0;
  bdat_chunk_ = 0;
  bdat_cr_ = false;
  bdat_fail_.reset();
  frozen_ = false;
  freeze_reason_.clear();
  data_.clear();
  data_size_ = 0;
  header_size_ = 0;
  in_header_ = true;
  at_line_start_ = true;
  prev_crlf_ = true;
  too_big_ = false;
  header_too_big_ = false;
  bare_newline_ = false;
  append_status_ = absl::OkStatus();
  if (state_ != State::kGreeting && state_ != State::kClosed) {
    state_ = State::kHelo;
  }
}

Action Session::Ask(CheckKind kind, std::string arg) {
  check_ = Check();
  check_.kind = kind;
  check_.arg = std::move(arg);
  pending_ = kind;
  return Action::kCheck;
}

Action Session::Step() {
  for (;;) {
    if (abort_pending_) {
      abort_pending_ = false;
      return Action::kAbortMessage;
    }
    if (state_ == State::kClosed) return Action::kClose;
    if (close_after_flush_) {
      state_ = State::kClosed;
      return Action::kClose;
    }
    if (pending_) return Action::kCheck;
    if (!connected_) {
      connected_ = true;
      return Ask(CheckKind::kConnect, client_.addr);
    }
    if (starttls_pending_) return Action::kStartTls;
    if (awaiting_begin_) return Action::kBeginMessage;
    if (end_of_data_) return Action::kCommit;
    if (out_.size() > kFlushBytes) return Action::kFlush;
    LineReader::Line line;
    if (bdat_reading_) {
      if (bdat_remaining_ > 0 && reader_.buffered() == 0) {
        if (eof_) {
          state_ = State::kClosed;  // nothing acknowledged; dropped
          return Action::kClose;
        }
        return Action::kNeedInput;
      }
      Action a = BdatBytes();
      if (a != Action::kNeedInput) return a;
      continue;
    }
    if (state_ == State::kData && data_started_ && !bdat_) {
      if (data_.size() >= kAppendBytes && append_status_.ok()) {
        return Action::kAppend;
      }
      if (!reader_.Next(LineReader::Mode::kData, &line)) {
        if (eof_) {
          // Nothing of this message was acknowledged; the driver drops it.
          state_ = State::kClosed;
          return Action::kClose;
        }
        return Action::kNeedInput;
      }
      Action a = DataLine(line);
      if (a != Action::kNeedInput) return a;
      continue;
    }
    if (stop_requested_ && !in_transaction()) {
      Send(ReplyId::kShuttingDown);
      state_ = State::kClosed;
      return Action::kClose;
    }
    if (!reader_.Next(LineReader::Mode::kCommand, &line)) {
      if (eof_) {
        state_ = State::kClosed;
        return Action::kClose;
      }
      return Action::kNeedInput;
    }
    Action a;
    if (line.too_long) {
      Count("toolong");
      auth_stage_ = AuthStage::kNone;
      a = Bad(ReplyId::kLineTooLong);
    } else if (auth_stage_ != AuthStage::kNone) {
      a = AuthResponse(line.text);
    } else {
      // The reader allows AUTH's 12,288 bytes; other commands keep 1,000.
      size_t len = line.text.size() + (line.crlf ? 2 : 1);
      a = HandleCommand(line.text, len > kMaxCommandLine);
    }
    if (a != Action::kNeedInput) return a;
  }
}

// A command the client got wrong. Too many of them end the session.
Action Session::Bad(ReplyId id, std::string_view text) {
  Send(id, text);
  ++unknown_commands_;
  if (config_.max_unknown_commands > 0 &&
      unknown_commands_ >= config_.max_unknown_commands) {
    Send(ReplyId::kTooManyErrors);
    state_ = State::kClosed;
    return Action::kClose;
  }
  return Action::kNeedInput;
}

// kNeedInput from here means "carry on with the next line".
Action Session::HandleCommand(std::string_view line, bool long_line) {
  if (line.find('\0') != std::string_view::npos) {
    Count("nul");
    return Bad(ReplyId::kEmptyCommand, "NUL character in command");
  }
  Command c = ParseCommand(line);
  if (long_line && c.verb != Verb::kAuth) {
    Count("toolong");
    return Bad(ReplyId::kLineTooLong);
  }
  if (refused_ && c.verb != Verb::kQuit) {
    Count("refused");
    return Bad(ReplyId::kBadSequence, "Service refused; only QUIT allowed");
  }
  // Between BDAT chunks only the chunking commands make sense.
  if (bdat_ && state_ == State::kData && c.verb != Verb::kBdat &&
      c.verb != Verb::kRset && c.verb != Verb::kQuit && c.verb != Verb::kNoop &&
      c.verb != Verb::kHelp) {
    Count(c.verb == Verb::kUnknown ? std::string("unknown") : ToLower(c.name));
    return Bad(ReplyId::kBadSequence, "Send BDAT, RSET, NOOP or QUIT");
  }
  switch (c.verb) {
    case Verb::kEmpty:
      Count("empty");
      return Bad(ReplyId::kEmptyCommand);
    case Verb::kUnknown:
      Count("unknown");
      return Bad(ReplyId::kUnknownCommand);
    case Verb::kHelo:
    case Verb::kEhlo:
      return Helo(c);
    case Verb::kMail:
      return Mail(c);
    case Verb::kRcpt:
      return Rcpt(c);
    case Verb::kData:
      return Data(c);
    case Verb::kBdat:
      return Bdat(c);
    case Verb::kAuth:
      return Auth(c);
    case Verb::kStarttls:
      return StartTls(c);
    case Verb::kEtrn:
      return Etrn(c);
    case Verb::kVrfy:
    case Verb::kExpn:
      return VrfyExpn(c);
    case Verb::kRset: {
      Count("rset");
      if (!c.arg.empty()) return Bad(ReplyId::kSyntax, "Syntax: RSET");
      bool open = data_started_;
      ResetTransaction();
      Send(ReplyId::kOk);
      if (open) return Action::kAbortMessage;
      break;
    }
    case Verb::kNoop:
      Count("noop");
      Send(ReplyId::kOk);
      break;
    case Verb::kQuit:
      Count("quit");
      Send(ReplyId::kBye);
      ResetTransaction();
      state_ = State::kClosed;
      return Action::kClose;
    case Verb::kHelp: {
      Count("help");
      if (config_.help.empty()) {
        Send(ReplyId::kHelp);
      } else {
        Reply r = MakeReply(ReplyId::kHelp);
        r.lines = config_.help;
        Send(r);
      }
      break;
    }
    default:
      Count(ToLower(c.name));
      return Bad(ReplyId::kDisabledCommand,
                 StrCat(Sanitize(c.name), " command not implemented"));
  }
  return Action::kNeedInput;
}

Action Session::Helo(const Command& c) {
  bool ehlo = c.verb == Verb::kEhlo;
  Count(ehlo ? "ehlo" : "helo");
  if (ehlo && !config_.ehlo) {
    return Bad(ReplyId::kDisabledCommand, "EHLO not available; use HELO");
  }
  std::string_view arg = Trim(c.arg);
  // Strict syntax: one word (a domain or an address literal; clients
  // name themselves badly too often to insist on more).
  if (arg.empty() ||
      (HasStyle('R') && arg.find_first_of(" \t") != std::string_view::npos)) {
    return Bad(ReplyId::kSyntax,
               StrCat("Syntax: ", ehlo ? "EHLO" : "HELO", " hostname"));
  }
  pending_ehlo_ = ehlo;
  return Ask(CheckKind::kHelo, std::string(arg));
}

Action Session::Mail(const Command& c) {
  Count("mail");
  if (state_ == State::kGreeting) {
    return Bad(ReplyId::kBadSequence, "Send HELO/EHLO first");
  }
  if (in_transaction())
    return Bad(ReplyId::kBadSequence, "Nested MAIL command");
  if ((client_.listener == Listener::kSubmission ||
       client_.listener == Listener::kSmtps ||
       (config_.msa_mode && client_.listener == Listener::kSmtp)) &&
      !relay_allowed()) {
    Send(ReplyId::kAuthRequired);
    return Action::kNeedInput;
  }
  path_ = ParseMailFrom(c.arg, PathOpts());
  if (!path_.ok()) return Bad(*path_.error, path_.detail);
  if (path_.mail.size && config_.max_message_size &&
      *path_.mail.size > config_.max_message_size) {
    Send(ReplyId::kMessageTooBig);
    return Action::kNeedInput;
  }
  Ask(CheckKind::kMailFrom, path_.address);
  check_.mail = path_.mail;
  return Action::kCheck;
}

Action Session::Rcpt(const Command& c) {
  Count("rcpt");
  if (state_ != State::kMail && state_ != State::kRcpt) {
    return Bad(ReplyId::kBadSequence, "Need MAIL command");
  }
  path_ = ParseRcptTo(c.arg, PathOpts());
  if (!path_.ok()) return Bad(*path_.error, path_.detail);
  if (path_.mail.smtputf8 && !envelope_.smtputf8) {
    Send(ReplyId::kNeedSmtpUtf8);
    return Action::kNeedInput;
  }
  if (envelope_.recipients.size() >= config_.rcpt_limit) {
    Send(ReplyId::kTooManyRecipients);
    return Action::kNeedInput;
  }
  Ask(CheckKind::kRcptTo, path_.address);
  check_.mail.smtputf8 = envelope_.smtputf8;
  check_.rcpt = path_.rcpt;
  return Action::kCheck;
}

Action Session::Data(const Command& c) {
  Count("data");
  if (!c.arg.empty()) return Bad(ReplyId::kSyntax, "Syntax: DATA");
  if (state_ == State::kMail) {
    return Bad(ReplyId::kBadSequence, "Need RCPT command");
  }
  if (state_ != State::kRcpt) {
    return Bad(ReplyId::kBadSequence, "Need MAIL command");
  }
  bdat_ = false;
  return Ask(CheckKind::kData, "");
}

// BDAT <size> [LAST] (RFC 3030). Once the size is known the chunk's bytes
// are always read, even when the command fails, so they are never taken
// for commands.
Action Session::Bdat(const Command& c) {
  Count("bdat");
  std::vector<std::string_view> words = Split(c.arg, ' ', true);
  uint64_t size = 0;
  bool last = words.size() == 2 && EqualsIgnoreCase(words[1], "LAST");
  if (words.empty() || words.size() > 2 || (words.size() == 2 && !last) ||
      words[0].size() > 18 || !ParseNumber(words[0], &size)) {
    return Bad(ReplyId::kSyntax, "Syntax: BDAT size [LAST]");
  }
  bdat_chunk_ = size;
  bdat_remaining_ = size;
  bdat_last_ = last;
  auto fail = [&](Reply r) {
    bdat_discard_ = true;
    bdat_fail_ = std::move(r);
    bdat_reading_ = true;
    ++unknown_commands_;
    return Action::kNeedInput;
  };
  if (!config_.chunking || !esmtp_) {
    return fail(MakeReply(ReplyId::kDisabledCommand, "BDAT not available"));
  }
  if (state_ == State::kData && bdat_) {  // a further chunk
    bdat_reading_ = true;
    return Action::kNeedInput;
  }
  if (state_ == State::kMail) {
    return fail(MakeReply(ReplyId::kBadSequence, "Need RCPT command"));
  }
  if (state_ != State::kRcpt) {
    return fail(MakeReply(ReplyId::kBadSequence, "Need MAIL command"));
  }
  bdat_ = true;
  return Ask(CheckKind::kData, "");
}

Action Session::BdatBytes() {
  if (bdat_remaining_ == 0) return ChunkDone();
  if (!bdat_discard_ && data_.size() >= kAppendBytes && append_status_.ok()) {
    return Action::kAppend;
  }
  std::string_view raw =
      reader_.TakeRaw(std::min<uint64_t>(bdat_remaining_, kAppendBytes));
  bdat_remaining_ -= raw.size();
  if (!bdat_discard_) BodyBytes(raw);
  return Action::kNeedInput;
}

// Chunk bytes: CRLF becomes LF (the spool's line end); a CR at the end of
// a chunk waits for the next one.
void Session::BodyBytes(std::string_view bytes) {
  if (bdat_cr_) {
    bdat_cr_ = false;
    if (!bytes.empty() && bytes.front() == '\n') {
      BodyLine("", true);
      bytes.remove_prefix(1);
    } else {
      BodyLine("\r", false);
    }
  }
  while (!bytes.empty()) {
    size_t nl = bytes.find('\n');
    if (nl == std::string_view::npos) {
      if (bytes.back() == '\r') {
        bdat_cr_ = true;
        bytes.remove_suffix(1);
      }
      if (!bytes.empty()) BodyLine(bytes, false);
      return;
    }
    std::string_view text = bytes.substr(0, nl);
    if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
    BodyLine(text, true);
    bytes.remove_prefix(nl + 1);
  }
}

Action Session::ChunkDone() {
  bdat_reading_ = false;
  if (bdat_discard_) {
    bdat_discard_ = false;
    Reply r = std::move(*bdat_fail_);
    bdat_fail_.reset();
    bool open = data_started_;
    ResetTransaction();
    if (r.code >= 500 && r.code < 510 && r.enhanced == "5.5.1") {
      // A sequence error counts against the client like any bad command.
      if (config_.max_unknown_commands > 0 &&
          unknown_commands_ >= config_.max_unknown_commands) {
        Send(r);
        Send(ReplyId::kTooManyErrors);
        state_ = State::kClosed;
        return Action::kClose;
      }
    }
    Send(r);
    if (open) {
      last_reply_ = r;
      return Action::kAbortMessage;
    }
    return Action::kNeedInput;
  }
  std::optional<Reply> fail;
  if (too_big_) {
    fail = MakeReply(ReplyId::kMessageTooBig);
  } else if (header_too_big_) {
    fail = MakeReply(ReplyId::kHeaderTooBig);
  } else if (!append_status_.ok()) {
    fail = ReplyForSpoolError(append_status_);
  }
  if (fail) {
    last_reply_ = *fail;
    Send(*fail);
    ResetTransaction();
    return Action::kAbortMessage;
  }
  if (!bdat_last_) {
    Send(ReplyId::kChunkOk, StrCat(bdat_chunk_, " octets received"));
    return Action::kNeedInput;
  }
  if (bdat_cr_) {
    bdat_cr_ = false;
    BodyLine("\r", false);
  }
  return EndOfData();
}

Action Session::Auth(const Command& c) {
  Count("auth");
  if (!config_.auth) {
    return Bad(ReplyId::kDisabledCommand, "AUTH command not implemented");
  }
  if (!esmtp_) return Bad(ReplyId::kBadSequence, "Send EHLO first");
  if (authenticated())
    return Bad(ReplyId::kBadSequence, "Already authenticated");
  if (in_transaction()) {
    return Bad(ReplyId::kBadSequence, "AUTH not allowed during a transaction");
  }
  if (!AuthOffered()) {
    Send(ReplyId::kEncryptionRequired);
    return Action::kNeedInput;
  }
  std::vector<std::string_view> words = Split(c.arg, ' ', true);
  if (words.empty() || words.size() > 2) {
    return Bad(ReplyId::kSyntax, "Syntax: AUTH mechanism [initial-response]");
  }
  std::string mech = EqualsIgnoreCase(words[0], "PLAIN")   ? "PLAIN"
                     : EqualsIgnoreCase(words[0], "LOGIN") ? "LOGIN"
                                                           : "";
  if (mech.empty()) {
    Send(ReplyId::kUnknownMechanism);
    return Action::kNeedInput;
  }
  check_ = Check();
  check_.mechanism = mech;
  auth_stage_ = mech == "PLAIN" ? AuthStage::kPlain : AuthStage::kLoginUser;
  if (words.size() == 2) return AuthResponse(words[1]);
  // An empty challenge for PLAIN; "Username:" for LOGIN.
  Send(SimpleReply(334, "", mech == "PLAIN" ? "" : Base64Encode("Username:")));
  return Action::kNeedInput;
}

Action Session::AuthResponse(std::string_view line) {
  AuthStage stage = auth_stage_;
  auth_stage_ = AuthStage::kNone;
  if (line == "*") {
    Send(ReplyId::kAuthCancelled);
    return Action::kNeedInput;
  }
  std::string raw;
  if (!Base64Decode(line, &raw)) return Bad(ReplyId::kAuthBadBase64);
  switch (stage) {
    case AuthStage::kPlain: {
      PlainCredentials pc;
      if (!ParsePlain(raw, &pc)) {
        return Bad(ReplyId::kAuthBadBase64, "Bad PLAIN credentials");
      }
      return AuthDecoded(pc.user, pc.password, pc.authzid);
    }
    case AuthStage::kLoginUser:
      if (raw.empty()) return Bad(ReplyId::kAuthBadBase64, "Empty user name");
      auth_login_user_ = std::move(raw);
      auth_stage_ = AuthStage::kLoginPassword;
      Send(SimpleReply(334, "", Base64Encode("Password:")));
      return Action::kNeedInput;
    case AuthStage::kLoginPassword: {
      std::string user = std::move(auth_login_user_);
      auth_login_user_.clear();
      return AuthDecoded(user, raw, "");
    }
    case AuthStage::kNone:
      break;
  }
  return Action::kNeedInput;
}

Action Session::AuthDecoded(std::string_view user, std::string_view password,
                            std::string_view authzid) {
  std::string mech = std::move(check_.mechanism);
  Ask(CheckKind::kAuth, "");
  check_.mechanism = std::move(mech);
  check_.user = std::string(user);
  check_.password = std::string(password);
  check_.authzid = std::string(authzid);
  return Action::kCheck;
}

Action Session::StartTls(const Command& c) {
  Count("starttls");
  if (tls_) return Bad(ReplyId::kBadSequence, "TLS already active");
  if (!config_.starttls) {
    return Bad(ReplyId::kDisabledCommand, "STARTTLS command not implemented");
  }
  if (!c.arg.empty()) return Bad(ReplyId::kSyntax, "Syntax: STARTTLS");
  if (in_transaction()) {
    return Bad(ReplyId::kBadSequence,
               "STARTTLS not allowed during a transaction");
  }
  Send(ReplyId::kStartTls);
  starttls_pending_ = true;
  return Action::kStartTls;
}

void Session::TlsStarted(TlsInfo info) {
  starttls_pending_ = false;
  // RFC 3207 section 4.2: forget everything learnt from the client before
  // the handshake, and never read plaintext sent before it as commands.
  reader_.Clear();
  tls_ = true;
  tls_info_ = std::move(info);
  helo_.clear();
  esmtp_ = false;
  auth_user_.clear();
  auth_stage_ = AuthStage::kNone;
  ResetTransaction();
  state_ = State::kGreeting;
}

void Session::TlsFailed() {
  starttls_pending_ = false;
  reader_.Clear();
  state_ = State::kClosed;
}

Action Session::Etrn(const Command& c) {
  Count("etrn");
  if (!config_.etrn) {
    return Bad(ReplyId::kDisabledCommand, "ETRN command not implemented");
  }
  if (state_ == State::kGreeting) {
    return Bad(ReplyId::kBadSequence, "Send HELO/EHLO first");
  }
  if (in_transaction()) {
    return Bad(ReplyId::kBadSequence, "ETRN not allowed during a transaction");
  }
  // RFC 1985: ETRN SP [ "@" / "#" ] node-name.
  std::string_view arg = c.arg;
  bool ok = !arg.empty() && arg.find(' ') == std::string_view::npos;
  if (ok && arg.front() == '#') {
    ok = arg.size() > 1 && arg.size() <= kMaxDomain;
    for (unsigned char ch : arg.substr(1)) {
      if (ch < 33 || ch > 126) ok = false;
    }
  } else if (ok) {
    ok = ValidDomainName(arg.front() == '@' ? arg.substr(1) : arg);
  }
  if (!ok) return Bad(ReplyId::kSyntax, "Syntax: ETRN [@|#]node-name");
  return Ask(CheckKind::kEtrn, std::string(arg));
}

Action Session::VrfyExpn(const Command& c) {
  bool vrfy = c.verb == Verb::kVrfy;
  Count(vrfy ? "vrfy" : "expn");
  if (vrfy ? !config_.vrfy : !config_.expn) {
    return Bad(ReplyId::kDisabledCommand,
               StrCat(vrfy ? "VRFY" : "EXPN", " command disabled"));
  }
  std::string_view arg = Trim(c.arg);
  if (arg.empty()) {
    return Bad(ReplyId::kSyntax,
               StrCat("Syntax: ", vrfy ? "VRFY" : "EXPN", " address"));
  }
  return Ask(vrfy ? CheckKind::kVrfy : CheckKind::kExpn, std::string(arg));
}

void Session::FillEnvelope() {
  std::string proto =
      envelope_.smtputf8 ? "UTF8SMTP" : (esmtp_ ? "ESMTP" : "SMTP");
  // RFC 3848 and RFC 6531 3.7.3: S for TLS, A for AUTH.
  if (esmtp_ || envelope_.smtputf8) {
    if (tls_) proto += "S";
    if (authenticated()) proto += "A";
  }
  envelope_.protocol = proto;
  envelope_.client_addr = client_.addr;
  envelope_.client_port = client_.port;
  envelope_.client_name = client_.name;
  envelope_.helo = helo_;
  envelope_.local_user = client_.local_user;
  envelope_.auth_user = auth_user_;
  envelope_.ident = client_.ident;
  envelope_.tls = tls_ ? StrCat(tls_info_.version, ":", tls_info_.cipher) : "";
}

void Session::CheckDone(Verdict v) {
  const std::optional<CheckKind> pending = pending_;
  pending_.reset();
  check_.password.clear();
  if (!pending) return;
  const CheckKind p = *pending;
  delay_ms_ = std::min<uint64_t>(uint64_t{delay_ms_} + v.delay_ms, kMaxDelayMs);
  if (!v.style_flags.empty())
    style_ = v.style_flags == "-" ? "" : v.style_flags;
  if (v.relay_allowed) relay_allowed_ = true;
  const bool ok = v.outcome != Verdict::Outcome::kReject;
  const bool freeze = v.outcome == Verdict::Outcome::kFreeze;
  auto reply = [&](Reply fallback) { return v.reply ? *v.reply : fallback; };
  Reply refused = MakeReply(ReplyId::kConnectRefused, "Rejected by policy");
  if (!ok) {
    // The command has no effect; the verdict's reply says why.
    Reply r =
        reply(p == CheckKind::kAuth ? MakeReply(ReplyId::kAuthFailed) : refused);
    switch (p) {
      case CheckKind::kConnect:
        refused_ = true;
        Send(r);
        break;
      case CheckKind::kData:
        if (bdat_) {  // the chunk is read, then refused
          bdat_discard_ = true;
          bdat_fail_ = r;
          bdat_reading_ = true;
        } else {
          Send(r);
        }
        break;
      case CheckKind::kMessage:
        last_reply_ = r;
        Send(r);
        ResetTransaction();
        abort_pending_ = true;
        break;
      default:
        Send(r);
        break;
    }
    if (v.close) close_after_flush_ = true;
    return;
  }
  switch (p) {
    case CheckKind::kConnect:
      if (v.reply) {
        Send(*v.reply);
      } else {
        out_ += Greeting();
      }
      break;
    case CheckKind::kHelo: {
      ResetTransaction();
      helo_ = check_.arg;
      esmtp_ = pending_ehlo_;
      state_ = State::kHelo;
      if (v.reply) {
        Send(*v.reply);
        break;
      }
      Reply r;
      r.code = 250;
      std::string peer =
          client_.addr.empty()
              ? StrCat("local user ", client_.local_user)
              : StrCat(client_.name.empty() ? "unknown" : client_.name, " [",
                       client_.addr, "]");
      r.lines.push_back(StrCat(config_.hostname, " Hello ", Sanitize(helo_),
                               " (", peer, ")"));
      if (esmtp_) {
        for (auto& k : EhloKeywords()) r.lines.push_back(std::move(k));
      }
      Send(r, /*keep_lines=*/true);
      break;
    }
    case CheckKind::kAuth:
      auth_user_ = v.auth_user.empty() ? check_.user : v.auth_user;
      Send(reply(MakeReply(ReplyId::kAuthOk)));
      break;
    case CheckKind::kMailFrom:
      ResetTransaction();
      envelope_.sender = path_.address;
      envelope_.bodytype = path_.mail.body;
      envelope_.ret = path_.mail.ret;
      envelope_.envid = path_.mail.envid;
      envelope_.smtputf8 = path_.mail.smtputf8;
      envelope_.deliverby = path_.mail.by;
      state_ = State::kMail;
      Send(reply(MakeReply(ReplyId::kSenderOk)));
      break;
    case CheckKind::kRcptTo:
      envelope_.recipients.push_back(
          {path_.address, path_.rcpt.notify, path_.rcpt.orcpt});
      state_ = State::kRcpt;
      Send(reply(MakeReply(ReplyId::kRecipientOk)));
      break;
    case CheckKind::kData:
      FillEnvelope();
      queue_id_.clear();
      state_ = State::kData;
      awaiting_begin_ = true;
      break;
    case CheckKind::kMessage:
      end_of_data_ = true;
      break;
    case CheckKind::kEtrn:
      Send(reply(
          MakeReply(ReplyId::kEtrnStarted,
                    StrCat("Queuing for node ", check_.arg, " started"))));
      break;
    case CheckKind::kVrfy:
    case CheckKind::kExpn:
      Send(reply(MakeReply(ReplyId::kCannotVerify)));
      break;
  }
  if (freeze && (p == CheckKind::kMailFrom || p == CheckKind::kRcptTo ||
                 p == CheckKind::kData || p == CheckKind::kMessage)) {
    frozen_ = true;
    freeze_reason_ = v.freeze_reason;
  }
  if (v.close) close_after_flush_ = true;
}

std::string Session::ReceivedHeader(int64_t now_usec) const {
  std::string h = "Received: ";
  if (client_.addr.empty()) {
    StrAppend(&h, "by ", config_.hostname, " (zmnode, from user ",
              Sanitize(client_.local_user), ")\n\twith ", envelope_.protocol,
              " id ", queue_id_);
  } else {
    std::string lit = client_.addr.find(':') != std::string::npos
                          ? StrCat("IPv6:", client_.addr)
                          : client_.addr;
    StrAppend(&h, "from ", Sanitize(helo_), " (",
              client_.name.empty() ? "unknown" : Sanitize(client_.name), " [",
              lit, "])");
    if (config_.rcvd_ident && !client_.ident.empty()) {
      StrAppend(&h, " (ident ", CommentText(client_.ident), ")");
    }
    StrAppend(&h, "\n\tby ", config_.hostname, " (zmnode) with ",
              envelope_.protocol, " id ", queue_id_);
  }
  if (config_.rcvd_auth_user && authenticated()) {
    StrAppend(&h, "\n\t(authenticated user ", CommentText(auth_user_), ")");
  }
  if (config_.rcvd_tls_mode && tls_) {
    StrAppend(&h, "\n\t(using ", CommentText(tls_info_.version),
              " with cipher ", CommentText(tls_info_.cipher), " (",
              tls_info_.bits, " bits)", tls_info_.resumed ? ", resumed" : "",
              ")");
  }
  if (config_.rcvd_tls_ccert && tls_ && !tls_info_.peer_subject.empty()) {
    StrAppend(&h, "\n\t(client certificate ",
              CommentText(tls_info_.peer_subject),
              tls_info_.peer_verified ? ", verified" : ", not verified", ")");
  }
  if (envelope_.recipients.size() == 1) {
    StrAppend(&h, "\n\tfor <", Sanitize(envelope_.recipients[0].address), ">");
  }
  StrAppend(&h, "; ", mail::Rfc5322Date(now_usec / 1000000), "\n");
  return h;
}

void Session::MessageBegun(const absl::Status& status,
                           std::string_view queue_id, int64_t now_usec) {
  awaiting_begin_ = false;
  if (!status.ok()) {
    last_reply_ = ReplyForSpoolError(status);
    if (bdat_) {  // read the chunk, then answer
      bdat_discard_ = true;
      bdat_fail_ = last_reply_;
      bdat_reading_ = true;
      return;
    }
    Send(last_reply_);
    ResetTransaction();
    return;
  }
  queue_id_ = std::string(queue_id);
  data_started_ = true;
  data_ = ReceivedHeader(now_usec);
  if (bdat_) {
    bdat_reading_ = true;
  } else {
    Send(ReplyId::kStartData);
  }
}

void Session::AppendFailed(const absl::Status& status) {
  append_status_ = status;
  data_.clear();
}

// One line (or fragment) of message text, after dot-unstuffing: counted,
// checked against the limits and kept for the spool.
void Session::BodyLine(std::string_view t, bool complete) {
  uint64_t bytes = t.size() + (complete ? 1 : 0);
  data_size_ += bytes;
  if (in_header_) {
    if (at_line_start_ && complete && t.empty()) {
      in_header_ = false;
    } else {
      header_size_ += bytes;
      if (config_.max_header_size && header_size_ > config_.max_header_size) {
        header_too_big_ = true;
      }
    }
  }
  if (config_.max_message_size && data_size_ > config_.max_message_size) {
    too_big_ = true;
  }
  if (!too_big_ && !header_too_big_ && append_status_.ok()) {
    data_.append(t);
    if (complete) data_ += '\n';
  } else {
    data_.clear();
  }
  at_line_start_ = complete;
}

Action Session::DataLine(const LineReader::Line& line) {
  bool line_start = at_line_start_;
  if (line.complete && line_start && line.text == "." &&
      (!config_.strict_dot || (line.crlf && prev_crlf_))) {
    return EndOfData();
  }
  std::string_view t = line.text;
  if (line_start && !t.empty() && t.front() == '.') t.remove_prefix(1);
  if (config_.strict_dot) {
    // RFC 5321 2.3.8: CR and LF only as CRLF. A bare LF ends the line
    // here but never ends the data; a bare CR stays inside the line.
    bool bare =
        (line.complete && !line.crlf) || t.find('\r') != std::string_view::npos;
    if (bare && !config_.bare_newline_normalise) bare_newline_ = true;
    if (bare && config_.bare_newline_normalise &&
        t.find('\r') != std::string_view::npos) {
      std::string clean;
      for (char ch : t) {
        if (ch != '\r') clean += ch;
      }
      BodyLine(clean, line.complete);
      if (line.complete) prev_crlf_ = line.crlf;
      return Action::kNeedInput;
    }
  }
  BodyLine(t, line.complete);
  if (line.complete) prev_crlf_ = line.crlf;
  return Action::kNeedInput;
}

Action Session::EndOfData() {
  data_started_ = false;
  std::optional<Reply> fail;
  if (too_big_) {
    fail = MakeReply(ReplyId::kMessageTooBig);
  } else if (header_too_big_) {
    fail = MakeReply(ReplyId::kHeaderTooBig);
  } else if (!append_status_.ok()) {
    fail = ReplyForSpoolError(append_status_);
  } else if (bare_newline_) {
    fail = MakeReply(ReplyId::kBareNewline);
  }
  if (fail) {
    last_reply_ = *fail;
    Send(*fail);
    ResetTransaction();
    return Action::kAbortMessage;
  }
  // The content check sees the whole message before anything is
  // acknowledged; the driver stages the data first (TakeData()).
  Ask(CheckKind::kMessage, "");
  check_.queue_id = queue_id_;
  return Action::kCheck;
}

void Session::MessageCommitted(const absl::Status& status) {
  if (status.ok()) {
    last_reply_ =
        MakeReply(ReplyId::kQueued, StrCat("Ok: queued as ", queue_id_));
  } else {
    last_reply_ = ReplyForSpoolError(status);
  }
  Send(last_reply_);
  ResetTransaction();
}

}  // namespace zm::smtp
