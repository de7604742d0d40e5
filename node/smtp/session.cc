#include "node/smtp/session.h"

#include <time.h>

#include <optional>

#include "node/common/strings.h"
#include "node/mail/rfc5322.h"

namespace zm::smtp {
namespace {

// Output beyond this is flushed before more input is read, so a client
// that pipelines without reading cannot grow our buffer without bound.
constexpr size_t kFlushBytes = 16 * 1024;
// Message bytes handed to the spool in chunks of about this size.
constexpr size_t kAppendBytes = 64 * 1024;

std::string Sanitize(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    out += (c < 33 || c > 126 || c == '(' || c == ')') ? '?'
                                                       : static_cast<char>(c);
  }
  return out;
}

std::string AddressLiteral(std::string_view addr) {
  if (addr.find(':') != std::string_view::npos)
    return StrCat("[ipv6:", ToLower(addr), "]");
  return StrCat("[", addr, "]");
}

}  // namespace

Session::Session(const SessionConfig& config, const LocalDomains& domains,
                 ClientInfo client)
    : config_(config), domains_(domains), client_(std::move(client)) {}

std::string Session::Greeting() const {
  std::string text = config_.greeting.empty()
                         ? StrCat(config_.hostname, " ESMTP zmnode")
                         : config_.greeting;
  return StrCat("220 ", text, "\r\n");
}

std::string Session::TakeOutput() {
  std::string out;
  out.swap(out_);
  return out;
}

std::string Session::TakeData() {
  std::string out;
  out.swap(data_);
  return out;
}

void Session::Send(const Reply& r) {
  out_ += r.Format(config_.enhanced_status_codes);
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

std::vector<std::string> Session::EhloKeywords() const {
  std::vector<std::string> k;
  if (config_.pipelining) k.push_back("PIPELINING");
  if (config_.size) {
    k.push_back(config_.max_message_size
                    ? StrCat("SIZE ", config_.max_message_size)
                    : std::string("SIZE"));
  }
  if (config_.eightbitmime) k.push_back("8BITMIME");
  if (config_.dsn) k.push_back("DSN");
  if (config_.enhanced_status_codes) k.push_back("ENHANCEDSTATUSCODES");
  if (config_.smtputf8 && config_.eightbitmime) k.push_back("SMTPUTF8");
  k.push_back(StrCat("X-RCPTLIMIT ", config_.rcpt_limit));
  return k;
}

PathOptions Session::PathOpts() const {
  PathOptions o;
  o.ext = {esmtp_, config_.size, config_.eightbitmime, config_.dsn,
           config_.smtputf8 && config_.eightbitmime};
  o.require_domain = config_.require_domain;
  return o;
}

void Session::ResetTransaction() {
  envelope_ = mail::Envelope();
  awaiting_begin_ = false;
  data_started_ = false;
  data_.clear();
  data_size_ = 0;
  header_size_ = 0;
  in_header_ = true;
  at_line_start_ = true;
  prev_crlf_ = true;
  too_big_ = false;
  header_too_big_ = false;
  append_status_ = absl::OkStatus();
  if (state_ != State::kGreeting && state_ != State::kClosed) {
    state_ = State::kHelo;
  }
}

bool Session::RecipientAllowed(std::string_view address) const {
  std::string domain = AddressDomain(address);
  if (domain.empty()) return true;  // <postmaster> or a local user name
  if (client_.trusted) return true;
  if (!client_.local_addr.empty() &&
      domain == AddressLiteral(client_.local_addr)) {
    return true;
  }
  return domains_.IsLocal(domain);
}

Action Session::Step() {
  for (;;) {
    if (state_ == State::kClosed) return Action::kClose;
    if (close_after_flush_) {
      state_ = State::kClosed;
      return Action::kClose;
    }
    if (awaiting_begin_) return Action::kBeginMessage;
    if (out_.size() > kFlushBytes) return Action::kFlush;
    LineReader::Line line;
    if (state_ == State::kData && data_started_) {
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
    if (state_ == State::kData) return Action::kCommit;  // awaiting commit
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
      Send(ReplyId::kLineTooLong);
      a = Action::kNeedInput;
    } else {
      a = HandleCommand(line.text);
    }
    if (a != Action::kNeedInput) return a;
  }
}

// kNeedInput from here means "carry on with the next line".
Action Session::HandleCommand(std::string_view line) {
  Command c = ParseCommand(line);
  auto bad = [&](ReplyId id, std::string_view text = {}) {
    Send(id, text);
    ++unknown_commands_;
    if (config_.max_unknown_commands > 0 &&
        unknown_commands_ >= config_.max_unknown_commands) {
      Send(ReplyId::kTooManyErrors);
      state_ = State::kClosed;
      return Action::kClose;
    }
    return Action::kNeedInput;
  };
  switch (c.verb) {
    case Verb::kEmpty:
      Count("empty");
      return bad(ReplyId::kEmptyCommand);
    case Verb::kUnknown:
      Count("unknown");
      return bad(ReplyId::kUnknownCommand);
    case Verb::kHelo:
    case Verb::kEhlo: {
      bool ehlo = c.verb == Verb::kEhlo;
      Count(ehlo ? "ehlo" : "helo");
      if (ehlo && !config_.ehlo) {
        Send(ReplyId::kDisabledCommand, "EHLO not available; use HELO");
        break;
      }
      std::string_view arg = Trim(c.arg);
      if (arg.empty()) {
        Send(ReplyId::kSyntax,
             StrCat("Syntax: ", ehlo ? "EHLO" : "HELO", " hostname"));
        break;
      }
      ResetTransaction();
      helo_ = std::string(arg);
      esmtp_ = ehlo;
      state_ = State::kHelo;
      Reply r;
      r.code = 250;
      std::string peer =
          client_.addr.empty()
              ? StrCat("local user ", client_.local_user)
              : StrCat(client_.name.empty() ? "unknown" : client_.name, " [",
                       client_.addr, "]");
      r.lines.push_back(
          StrCat(config_.hostname, " Hello ", Sanitize(arg), " (", peer, ")"));
      if (ehlo) {
        for (auto& k : EhloKeywords()) r.lines.push_back(std::move(k));
      }
      Send(r);
      break;
    }
    case Verb::kMail: {
      Count("mail");
      if (state_ == State::kGreeting) {
        Send(ReplyId::kBadSequence, "Send HELO/EHLO first");
        break;
      }
      if (in_transaction()) {
        Send(ReplyId::kBadSequence, "Nested MAIL command");
        break;
      }
      PathOptions o = PathOpts();
      PathResult p = ParseMailFrom(c.arg, o);
      if (!p.ok()) {
        Send(*p.error, p.detail);
        break;
      }
      if (p.mail.size && config_.max_message_size &&
          *p.mail.size > config_.max_message_size) {
        Send(ReplyId::kMessageTooBig);
        break;
      }
      ResetTransaction();
      envelope_.sender = p.address;
      envelope_.bodytype = p.mail.body;
      envelope_.ret = p.mail.ret;
      envelope_.envid = p.mail.envid;
      envelope_.smtputf8 = p.mail.smtputf8;
      state_ = State::kMail;
      Send(ReplyId::kSenderOk);
      break;
    }
    case Verb::kRcpt: {
      Count("rcpt");
      if (state_ != State::kMail && state_ != State::kRcpt) {
        Send(ReplyId::kBadSequence, "Need MAIL command");
        break;
      }
      PathOptions o = PathOpts();
      PathResult p = ParseRcptTo(c.arg, o);
      if (!p.ok()) {
        Send(*p.error, p.detail);
        break;
      }
      if (p.mail.smtputf8 && !envelope_.smtputf8) {
        Send(ReplyId::kNeedSmtpUtf8);
        break;
      }
      if (envelope_.recipients.size() >= config_.rcpt_limit) {
        Send(ReplyId::kTooManyRecipients);
        break;
      }
      if (!RecipientAllowed(p.address)) {
        Send(ReplyId::kRelayDenied,
             StrCat("<", p.address, ">: Relaying denied"));
        break;
      }
      envelope_.recipients.push_back({p.address, p.rcpt.notify, p.rcpt.orcpt});
      state_ = State::kRcpt;
      Send(ReplyId::kRecipientOk);
      break;
    }
    case Verb::kData: {
      Count("data");
      if (!c.arg.empty()) {
        Send(ReplyId::kSyntax, "Syntax: DATA");
        break;
      }
      if (state_ == State::kMail) {
        Send(ReplyId::kBadSequence, "Need RCPT command");
        break;
      }
      if (state_ != State::kRcpt) {
        Send(ReplyId::kBadSequence, "Need MAIL command");
        break;
      }
      envelope_.protocol = esmtp_ ? "ESMTP" : "SMTP";
      envelope_.client_addr = client_.addr;
      envelope_.client_port = client_.port;
      envelope_.client_name = client_.name;
      envelope_.helo = helo_;
      envelope_.local_user = client_.local_user;
      queue_id_.clear();
      state_ = State::kData;
      awaiting_begin_ = true;
      return Action::kBeginMessage;
    }
    case Verb::kRset:
      Count("rset");
      if (!c.arg.empty()) {
        Send(ReplyId::kSyntax, "Syntax: RSET");
        break;
      }
      ResetTransaction();
      Send(ReplyId::kOk);
      break;
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
      Send(ReplyId::kDisabledCommand,
           StrCat(Sanitize(c.name), " command not implemented"));
      break;
  }
  return Action::kNeedInput;
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
              lit, "])\n\tby ", config_.hostname, " (zmnode) with ",
              envelope_.protocol, " id ", queue_id_);
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
    Send(last_reply_);
    ResetTransaction();
    return;
  }
  queue_id_ = std::string(queue_id);
  data_started_ = true;
  data_ = ReceivedHeader(now_usec);
  Send(ReplyId::kStartData);
}

void Session::AppendFailed(const absl::Status& status) {
  append_status_ = status;
  data_.clear();
}

Action Session::DataLine(const LineReader::Line& line) {
  if (line.complete && at_line_start_ && line.text == "." &&
      (!config_.strict_dot || (line.crlf && prev_crlf_))) {
    return EndOfData();
  }
  std::string_view t = line.text;
  if (at_line_start_ && !t.empty() && t.front() == '.') t.remove_prefix(1);
  uint64_t bytes = t.size() + (line.complete ? 1 : 0);
  data_size_ += bytes;
  if (in_header_) {
    if (at_line_start_ && line.complete && t.empty()) {
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
    if (line.complete) data_ += '\n';
  } else {
    data_.clear();
  }
  at_line_start_ = line.complete;
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
  }
  if (fail) {
    last_reply_ = *fail;
    Send(*fail);
    ResetTransaction();
    return Action::kAbortMessage;
  }
  return Action::kCommit;
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
