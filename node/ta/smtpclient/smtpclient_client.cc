// Reply parsing, EHLO capabilities and the mail transaction.
#include <cctype>

#include "node/common/strings.h"
#include "node/mail/xtext.h"
#include "node/ta/smtpclient/smtpclient.h"

namespace zm::smtpclient {
namespace {

bool IsEnhanced(std::string_view s) {
  // "d.ddd.ddd" with class 2, 4 or 5.
  if (s.size() < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') ||
      s[1] != '.') {
    return false;
  }
  std::vector<std::string_view> parts = Split(s, '.');
  if (parts.size() != 3) return false;
  for (size_t i = 1; i < 3; ++i) {
    if (parts[i].empty() || parts[i].size() > 3) return false;
    for (char c : parts[i]) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    }
  }
  return true;
}

Outcome Make(int klass, std::string dsn, std::string diag) {
  return Outcome{klass, std::move(dsn), std::move(diag)};
}

// The outcome a reply gives, with `what` naming the command it answered.
Outcome FromReply(const Reply& r, std::string_view what, bool lmtp) {
  int k = r.klass() == 2 ? 2 : r.klass() == 5 ? 5 : 4;
  std::string dsn = r.enhanced;
  if (dsn.empty() || dsn[0] - '0' != k) dsn = StrCat(k, ".0.0");
  return Make(k, dsn,
              StrCat(lmtp ? "lmtp; " : "smtp; ", r.Text(), " (in reply to ",
                     what, ")"));
}

Outcome Broken(const absl::Status& s, std::string_view when, bool lmtp) {
  return Make(4, "4.4.2",
              StrCat(lmtp ? "lmtp; " : "smtp; ", "lost connection ", when, ": ",
                     Message(s)));
}

std::string AddrParam(std::string_view a) { return StrCat("<", a, ">"); }

// RFC 5321 4.5.3.1.10: "452 too many recipients" (and the old 552 for the
// same, to be treated as 452): the recipient goes in a later transaction.
bool TooManyRecipients(const Reply& r) {
  if (r.code != 452 && r.code != 552) return false;
  if (r.enhanced == "4.5.3" || r.enhanced == "5.5.3") return true;
  return !r.lines.empty() &&
         ToLower(r.lines[0]).find("too many recipients") != std::string::npos;
}

}  // namespace

std::string Reply::Text() const {
  std::string t = std::to_string(code);
  if (!lines.empty()) {
    std::string_view first = lines[0];
    if (!enhanced.empty() && first.substr(0, enhanced.size()) == enhanced) {
      first.remove_prefix(enhanced.size());
      first = Trim(first);
    }
    if (!enhanced.empty()) StrAppend(&t, " ", enhanced);
    if (!first.empty()) StrAppend(&t, " ", first);
    // Later lines of a multi-line reply, shortened, for the diagnostic.
    for (size_t i = 1; i < lines.size() && t.size() < 600; ++i) {
      std::string_view more = lines[i];
      if (!enhanced.empty() && more.substr(0, enhanced.size()) == enhanced) {
        more.remove_prefix(enhanced.size());
      }
      more = Trim(more);
      if (!more.empty()) StrAppend(&t, " ", more);
    }
  } else if (!enhanced.empty()) {
    StrAppend(&t, " ", enhanced);
  }
  return t;
}

absl::Status ReplyParser::Feed(std::string_view line) {
  if (done_) return absl::FailedPreconditionError("reply already complete");
  if (line.size() < 3 || !std::isdigit(static_cast<unsigned char>(line[0])) ||
      !std::isdigit(static_cast<unsigned char>(line[1])) ||
      !std::isdigit(static_cast<unsigned char>(line[2])) || line[0] < '2' ||
      line[0] > '5' || (line.size() > 3 && line[3] != ' ' && line[3] != '-')) {
    std::string shown(line.substr(0, 60));
    for (char& c : shown) {
      if (static_cast<unsigned char>(c) < 0x20) c = '?';
    }
    return absl::InvalidArgumentError(
        StrCat("garbage reply from the peer: '", shown, "'"));
  }
  int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
  if (reply_.lines.empty()) {
    reply_.code = code;
  } else if (code != reply_.code) {
    return absl::InvalidArgumentError(StrCat(
        "reply lines with different codes ", reply_.code, " and ", code));
  }
  if (reply_.lines.size() >= kMaxReplyLines) {
    return absl::OutOfRangeError("reply with too many lines");
  }
  std::string_view text = line.size() > 4 ? line.substr(4) : "";
  if (reply_.lines.empty()) {
    std::string_view first = text.substr(0, text.find(' '));
    if (IsEnhanced(first) && first[0] == line[0]) {
      reply_.enhanced = std::string(first);
    }
  }
  reply_.lines.emplace_back(text);
  done_ = line.size() == 3 || line[3] == ' ';
  return absl::OkStatus();
}

Reply ReplyParser::Take() {
  Reply r = std::move(reply_);
  reply_ = Reply();
  done_ = false;
  return r;
}

Capabilities ParseEhlo(const Reply& ehlo) {
  Capabilities c;
  c.esmtp = true;
  for (size_t i = 1; i < ehlo.lines.size(); ++i) {
    std::vector<std::string_view> w = SplitWhitespace(ehlo.lines[i]);
    if (w.empty()) continue;
    std::string kw = ToLower(w[0]);
    if (kw == "pipelining") c.pipelining = true;
    if (kw == "8bitmime") c.eightbitmime = true;
    if (kw == "dsn") c.dsn = true;
    if (kw == "chunking") c.chunking = true;
    if (kw == "smtputf8") c.smtputf8 = true;
    if (kw == "starttls") c.starttls = true;
    if (kw == "x-rcptlimit" && w.size() > 1) {
      size_t n = 0;
      if (ParseNumber(w[1], &n)) c.rcpt_limit = n;
    }
    if (kw == "size") {
      c.size = true;
      uint64_t n = 0;
      if (w.size() > 1 && ParseNumber(w[1], &n)) c.max_size = n;
    }
  }
  return c;
}

Client::Client(std::unique_ptr<Connection> conn, Timeouts timeouts, bool lmtp)
    : conn_(std::move(conn)), t_(timeouts), lmtp_(lmtp) {}

Client::~Client() = default;

absl::StatusOr<Reply> Client::Command(std::string_view line, int timeout_ms) {
  std::string out = StrCat(line, "\r\n");
  if (auto s = conn_->Write(out, t_.command_ms); !s.ok()) return s;
  return conn_->ReadReply(timeout_ms);
}

std::optional<Outcome> Client::Hello(std::string_view helo_name) {
  std::string verb = lmtp_ ? "LHLO" : "EHLO";
  auto r = Command(StrCat(verb, " ", helo_name), t_.command_ms);
  if (!r.ok()) return Broken(r.status(), StrCat("after ", verb), lmtp_);
  if (r->klass() == 2) {
    caps_ = ParseEhlo(*r);
    return std::nullopt;
  }
  if (lmtp_ || r->klass() == 4) return FromReply(*r, verb, lmtp_);
  // An old peer: plain HELO, no extensions.
  r = Command(StrCat("HELO ", helo_name), t_.command_ms);
  if (!r.ok()) return Broken(r.status(), "after HELO", lmtp_);
  if (r->klass() != 2) return FromReply(*r, "HELO", lmtp_);
  caps_ = Capabilities();
  return std::nullopt;
}

std::optional<Outcome> Client::Open(std::string_view helo_name) {
  helo_name_ = std::string(helo_name);
  auto greet = conn_->ReadReply(t_.greeting_ms);
  if (!greet.ok()) return Broken(greet.status(), "before the greeting", lmtp_);
  if (greet->klass() != 2) return FromReply(*greet, "the greeting", lmtp_);
  auto f = Hello(helo_name);
  usable_ = !f.has_value();
  return f;
}

std::optional<Outcome> Client::StartTls(const TlsOptions& options) {
  usable_ = false;
  auto r = Command("STARTTLS", t_.command_ms);
  if (!r.ok()) return Broken(r.status(), "after STARTTLS", lmtp_);
  if (r->klass() != 2) return FromReply(*r, "STARTTLS", lmtp_);
  if (auto s = conn_->StartTls(options, t_.command_ms); !s.ok()) {
    return Make(4, "4.7.5", StrCat(lmtp_ ? "lmtp; " : "smtp; ", Message(s)));
  }
  auto f = Hello(helo_name_);
  usable_ = !f.has_value();
  return f;
}

bool Client::Reset() {
  usable_ = usable_ && !conn_->HasPendingInput();
  return usable_;
}

void Client::Quit() {
  if (usable_) {
    // Best effort and short: the peer's answer changes nothing.
    (void)Command("QUIT", std::min(t_.command_ms, 5000));
  }
  usable_ = false;
  conn_.reset();
}

// What every transaction of one Send() shares.
struct Client::Prepared {
  std::string mail;                // MAIL FROM:<...> with parameters
  std::vector<std::string> rcpts;  // RCPT TO:<...> per envelope recipient
  std::string wire;                // the message as DATA or BDAT wants it
  bool bdat = false;
};

std::vector<Outcome> Client::Send(const Envelope& env,
                                  std::string_view message) {
  const size_t n = env.recipients.size();
  std::vector<Outcome> out(n);
  server_failed_ = false;
  if (n == 0) return out;
  auto all = [&](const Outcome& o) {
    for (auto& x : out) x = o;
    return out;
  };
  const char* tag = lmtp_ ? "lmtp; " : "smtp; ";
  if (!usable_) {
    server_failed_ = true;
    return all(Make(4, "4.4.2", StrCat(tag, "connection not usable")));
  }
  // What the message needs from the peer.
  bool utf8 = HeaderHas8Bit(message) || Has8Bit(env.sender);
  for (const auto& r : env.recipients) utf8 = utf8 || Has8Bit(r.address);
  if (utf8 && !caps_.smtputf8) {
    return all(Make(5, "5.6.7",
                    StrCat(tag,
                           "the message needs SMTPUTF8 (UTF-8 header or "
                           "address) and the peer does not offer it")));
  }
  bool eight = Has8Bit(message);
  std::string converted;
  if (eight && !caps_.eightbitmime && !utf8) {
    converted = ConvertTo7Bit(message);
    message = converted;
    eight = false;
  }
  Prepared p;
  p.bdat = caps_.chunking;
  p.wire = p.bdat ? BdatWire(message) : DataWire(message);
  uint64_t size = p.wire.size();
  if (caps_.size && caps_.max_size > 0 && size > caps_.max_size) {
    return all(Make(
        5, "5.3.4",
        StrCat(tag, "message of ", size,
               " bytes is larger than the peer's limit of ", caps_.max_size)));
  }

  // The commands of the transaction.
  p.mail = StrCat("MAIL FROM:", AddrParam(env.sender));
  if (caps_.size) StrAppend(&p.mail, " SIZE=", size);
  if (eight) StrAppend(&p.mail, " BODY=8BITMIME");
  if (utf8) StrAppend(&p.mail, " SMTPUTF8");
  if (caps_.dsn) {
    if (!env.ret.empty()) StrAppend(&p.mail, " RET=", env.ret);
    if (!env.envid.empty()) {
      StrAppend(&p.mail, " ENVID=", mail::XtextEncode(env.envid));
    }
  }
  for (const auto& r : env.recipients) {
    std::string c = StrCat("RCPT TO:", AddrParam(r.address));
    if (caps_.dsn) {
      if (!r.notify.empty()) StrAppend(&c, " NOTIFY=", r.notify);
      if (!r.orcpt.empty()) {
        StrAppend(&c, " ORCPT=", Has8Bit(r.orcpt) ? "utf-8;" : "rfc822;",
                  mail::XtextEncode(r.orcpt));
      }
    }
    p.rcpts.push_back(std::move(c));
  }

  // Transactions until every recipient has an outcome: the peer's or our
  // recipient limit splits the envelope; "too many recipients" refusals
  // go again, in the next transaction on the same connection.
  size_t limit = n;
  if (caps_.rcpt_limit > 0) limit = std::min(limit, caps_.rcpt_limit);
  if (rcpt_limit_ > 0) limit = std::min(limit, rcpt_limit_);
  std::vector<size_t> todo(n);
  for (size_t i = 0; i < n; ++i) todo[i] = i;
  bool first = true;
  bool server_failed = false;
  while (!todo.empty()) {
    size_t take = std::min(limit, todo.size());
    std::vector<size_t> batch(todo.begin(), todo.begin() + take);
    std::vector<size_t> rest(todo.begin() + take, todo.end());
    std::vector<size_t> again;
    Transaction(p, batch, &out, &again);
    if (first) server_failed = server_failed_;
    first = false;
    if (!again.empty()) {
      size_t got = batch.size() - again.size();
      if (got == 0 || !usable_) {
        // No progress (or no connection left): these wait for a later try
        // with the peer's own refusal (already in their outcomes).
        rest.clear();
        again.clear();
      } else {
        // The peer's real limit: what it took in this transaction.
        limit = std::min(limit, got);
      }
    }
    if (!rest.empty() && !usable_) {
      for (size_t i : rest) {
        out[i] = Make(4, "4.4.2",
                      StrCat(tag,
                             "connection lost before a further transaction "
                             "for the remaining recipients"));
      }
      rest.clear();
    }
    todo = std::move(again);
    todo.insert(todo.end(), rest.begin(), rest.end());
  }
  bool any_final = false;
  for (const auto& o : out) any_final = any_final || o.klass != 4;
  server_failed_ = server_failed && !any_final;
  return out;
}

void Client::Transaction(const Prepared& p, const std::vector<size_t>& idx,
                         std::vector<Outcome>* outp,
                         std::vector<size_t>* too_many) {
  std::vector<Outcome>& out = *outp;
  const size_t n = idx.size();
  server_failed_ = false;
  auto all = [&](const Outcome& o) {
    for (size_t i : idx) out[i] = o;
  };
  // Nothing delivered and the server (not a recipient) is the reason.
  auto broken = [&](const absl::Status& s, std::string_view when) {
    usable_ = false;
    server_failed_ = true;
    all(Broken(s, when, lmtp_));
  };
  usable_ = false;  // until the transaction ends cleanly
  bool rset = rset_pending_;
  rset_pending_ = false;
  Reply mail_reply;
  std::vector<Reply> rcpt_replies(n);
  std::optional<Reply> data_reply;
  bool pipeline_data = caps_.pipelining && !p.bdat;
  if (caps_.pipelining) {
    std::string batch;
    if (rset) batch = "RSET\r\n";
    StrAppend(&batch, p.mail, "\r\n");
    for (size_t i : idx) StrAppend(&batch, p.rcpts[i], "\r\n");
    if (pipeline_data) batch += "DATA\r\n";
    if (auto s = conn_->Write(batch, t_.command_ms); !s.ok()) {
      return broken(s, "while sending MAIL FROM");
    }
    if (rset) {
      auto r = conn_->ReadReply(t_.command_ms);
      if (!r.ok()) return broken(r.status(), "after RSET");
      if (r->klass() != 2) {
        server_failed_ = true;
        return all(FromReply(*r, "RSET", lmtp_));
      }
    }
    auto r = conn_->ReadReply(t_.command_ms);
    if (!r.ok()) return broken(r.status(), "after MAIL FROM");
    mail_reply = *r;
    for (size_t k = 0; k < n; ++k) {
      auto rr = conn_->ReadReply(t_.command_ms);
      if (!rr.ok()) return broken(rr.status(), "after RCPT TO");
      rcpt_replies[k] = *rr;
    }
    if (pipeline_data) {
      auto d = conn_->ReadReply(t_.data_init_ms);
      if (!d.ok()) return broken(d.status(), "after DATA");
      data_reply = *d;
    }
  } else {
    if (rset) {
      auto r = Command("RSET", t_.command_ms);
      if (!r.ok()) return broken(r.status(), "after RSET");
      if (r->klass() != 2) {
        server_failed_ = true;
        return all(FromReply(*r, "RSET", lmtp_));
      }
    }
    auto r = Command(p.mail, t_.command_ms);
    if (!r.ok()) return broken(r.status(), "after MAIL FROM");
    mail_reply = *r;
    if (mail_reply.klass() == 2) {
      for (size_t k = 0; k < n; ++k) {
        auto rr = Command(p.rcpts[idx[k]], t_.command_ms);
        if (!rr.ok()) return broken(rr.status(), "after RCPT TO");
        rcpt_replies[k] = *rr;
      }
    }
  }

  std::vector<size_t> accepted;
  bool closing = mail_reply.code == 421;
  for (size_t k = 0; k < n; ++k) {
    size_t i = idx[k];
    if (mail_reply.klass() != 2) {
      out[i] = FromReply(mail_reply, "MAIL FROM", lmtp_);
    } else if (rcpt_replies[k].klass() != 2) {
      out[i] = FromReply(rcpt_replies[k], "RCPT TO", lmtp_);
      closing = closing || rcpt_replies[k].code == 421;
      if (TooManyRecipients(rcpt_replies[k])) {
        out[i].klass = 4;  // never a reason to fail the recipient
        out[i].dsn = "4.5.3";
        too_many->push_back(i);
      }
    } else {
      accepted.push_back(i);
    }
  }
  if (mail_reply.klass() == 4 || closing) server_failed_ = true;
  if (accepted.empty() || closing) {
    if (data_reply && data_reply->code == 354) {
      // The peer took DATA although no recipient was accepted: end it
      // with an empty message; its reply is not a delivery.
      if (conn_->Write(".\r\n", t_.data_block_ms).ok()) {
        (void)conn_->ReadReply(t_.data_term_ms);
      }
    }
    if (closing) {
      // 421: the peer is closing; nothing was sent to anybody.
      for (size_t i : accepted) {
        out[i] = FromReply(
            mail_reply.code == 421 ? mail_reply : Reply{421, "4.4.2", {}},
            "RCPT TO", lmtp_);
      }
      too_many->clear();
      return;
    }
    usable_ = true;
    rset_pending_ = true;
    return;
  }
  server_failed_ = false;

  // The message.
  std::string what;
  if (p.bdat) {
    what = "BDAT";
    std::optional<Reply> bad;
    if (auto s = SendChunks(p.wire, &bad); !s.ok()) {
      for (size_t i : accepted) out[i] = Broken(s, "while sending BDAT", lmtp_);
      return;
    }
    if (bad) {
      // A chunk was refused: the peer dropped the message; its reply to
      // the last chunk (read below) does not change that.
      (void)conn_->ReadReply(t_.data_term_ms);
      for (size_t i : accepted) out[i] = FromReply(*bad, what, lmtp_);
      usable_ = bad->code != 421 && !conn_->HasPendingInput();
      rset_pending_ = true;
      return;
    }
  } else {
    what = "end of DATA";
    if (!data_reply) {
      auto d = Command("DATA", t_.data_init_ms);
      if (!d.ok()) {
        for (size_t i : accepted)
          out[i] = Broken(d.status(), "after DATA", lmtp_);
        return;
      }
      data_reply = *d;
    }
    if (data_reply->code != 354) {
      for (size_t i : accepted) out[i] = FromReply(*data_reply, "DATA", lmtp_);
      usable_ = data_reply->klass() != 3 && data_reply->code != 421;
      rset_pending_ = true;
      return;
    }
    if (auto s = conn_->Write(p.wire, t_.data_block_ms); !s.ok()) {
      for (size_t i : accepted) {
        out[i] = Broken(s, "while sending the message", lmtp_);
      }
      return;
    }
  }
  // The verdict: one reply, or one per accepted recipient for LMTP.
  size_t replies = lmtp_ ? accepted.size() : 1;
  for (size_t k = 0; k < replies; ++k) {
    auto r = conn_->ReadReply(t_.data_term_ms);
    if (!r.ok()) {
      for (size_t j = lmtp_ ? k : 0; j < accepted.size(); ++j) {
        out[accepted[j]] = Broken(r.status(), StrCat("after ", what), lmtp_);
      }
      return;
    }
    if (lmtp_) {
      out[accepted[k]] = FromReply(*r, what, lmtp_);
    } else {
      for (size_t i : accepted) out[i] = FromReply(*r, what, lmtp_);
    }
    if (r->code == 421) return;  // usable_ stays false
  }
  usable_ = !conn_->HasPendingInput();
}

absl::Status Client::SendChunks(const std::string& wire,
                                std::optional<Reply>* bad) {
  // Every chunk but the last gets its reply here: at once without
  // PIPELINING, else after all chunks are written (RFC 3030 lets BDAT
  // be pipelined). The last chunk's reply is the caller's.
  size_t sent = 0, unanswered = 0;
  do {
    size_t len = std::min(bdat_chunk_, wire.size() - sent);
    bool last = sent + len == wire.size();
    std::string cmd = StrCat("BDAT ", len, last ? " LAST\r\n" : "\r\n");
    absl::Status s = conn_->Write(cmd, t_.command_ms);
    if (s.ok())
      s = conn_->Write(std::string_view(wire).substr(sent, len),
                       t_.data_block_ms);
    if (!s.ok()) return s;
    sent += len;
    if (last) break;
    ++unanswered;
    if (!caps_.pipelining || *bad) {
      for (; unanswered > 0; --unanswered) {
        auto r = conn_->ReadReply(t_.data_block_ms);
        if (!r.ok()) return r.status();
        if (r->klass() != 2 && !*bad) *bad = *r;
      }
    }
  } while (sent < wire.size());
  for (; unanswered > 0; --unanswered) {
    auto r = conn_->ReadReply(t_.data_block_ms);
    if (!r.ok()) return r.status();
    if (r->klass() != 2 && !*bad) *bad = *r;
  }
  return absl::OkStatus();
}

}  // namespace zm::smtpclient
