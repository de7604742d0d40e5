#include "node/smtpserver/smtpserver_milter.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <utility>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/mail/xtext.h"
#include "node/smtp/session.h"

namespace zm::smtpserver {

using milter::Modification;
using milter::Result;
using smtp::CheckKind;
using smtp::Reply;
using smtp::Verdict;

std::string ListenerName(smtp::Listener l) {
  switch (l) {
    case smtp::Listener::kSmtp:
      return "smtp";
    case smtp::Listener::kSubmission:
      return "submission";
    case smtp::Listener::kSmtps:
      return "smtps";
    case smtp::Listener::kLocal:
      return "local";
  }
  return "smtp";
}

namespace {

// The envelope and header section of a staged message, read once; the
// body stays on disk.
constexpr size_t kMaxHead = 32 << 20;
constexpr size_t kReadChunk = 64 * 1024;

struct HeaderField {
  std::string name;
  std::string text;  // "Name: value\n\tcontinued\n", LF endings
  // The value as it follows the colon, continuation lines joined by "\n".
  std::string Value() const {
    std::string_view v = text;
    v.remove_prefix(name.size() + 1);
    while (!v.empty() && v.back() == '\n') v.remove_suffix(1);
    return std::string(v);
  }
};

struct Staged {
  mail::Envelope envelope;
  std::vector<HeaderField> headers;
  bool separator = false;    // a blank line ended the headers
  uint64_t body_offset = 0;  // file offset of the body
  uint64_t file_size = 0;
};

absl::StatusOr<Staged> ReadStaged(int fd, const std::string& path) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return fs::ErrnoStatus("fstat", path, errno);
  Staged s;
  s.file_size = static_cast<uint64_t>(st.st_size);
  std::string buf;
  size_t env_end = std::string::npos, head_end = std::string::npos;
  size_t scanned = 0;  // "\n\n" was searched for up to here
  while (buf.size() < kMaxHead && buf.size() < s.file_size) {
    size_t old = buf.size();
    size_t want = std::min<uint64_t>(kReadChunk, s.file_size - old);
    buf.resize(old + want);
    ssize_t n = ::pread(fd, buf.data() + old, want, static_cast<off_t>(old));
    if (n < 0) return fs::ErrnoStatus("read", path, errno);
    buf.resize(old + static_cast<size_t>(n));
    if (n == 0) break;
    if (env_end == std::string::npos) {
      size_t e = buf.find("\nenv-end\n");
      if (e == std::string::npos) continue;
      env_end = e + 9;
    }
    if (buf.size() > env_end && buf[env_end] == '\n') {
      head_end = env_end;  // no header fields at all
      break;
    }
    size_t e =
        buf.find("\n\n", std::max(env_end, scanned > 0 ? scanned - 1 : 0));
    if (e != std::string::npos) {
      head_end = e + 1;  // the blank line
      break;
    }
    scanned = buf.size();
  }
  if (env_end == std::string::npos) {
    return absl::DataLossError(StrCat(path, ": no envelope end"));
  }
  // Parse the envelope alone: its size field says 0 bytes follow.
  std::string head = buf.substr(0, env_end);
  size_t size_at = head.rfind("\nsize ");
  if (size_at == std::string::npos) {
    return absl::DataLossError(StrCat(path, ": no size in the envelope"));
  }
  for (size_t i = size_at + 6; i < head.size() && head[i] != '\n'; ++i) {
    head[i] = '0';
  }
  auto mf = mail::ParseMessageFile(head);
  if (!mf.ok()) return mf.status();
  s.envelope = std::move(mf->envelope);
  // The header section: fields and their continuation lines, up to a
  // blank line, a line that is neither, or the end of what was read.
  size_t limit = head_end == std::string::npos ? buf.size() : head_end;
  size_t pos = env_end;
  while (pos < limit) {
    size_t nl = buf.find('\n', pos);
    size_t end = nl == std::string::npos || nl >= limit ? limit : nl + 1;
    std::string_view line = std::string_view(buf).substr(pos, end - pos);
    if ((line[0] == ' ' || line[0] == '\t') && !s.headers.empty()) {
      s.headers.back().text += line;
    } else {
      size_t colon = line.find(':');
      std::string_view name = line.substr(0, colon);
      bool field = colon != std::string_view::npos && !name.empty() &&
                   name.find_first_of(" \t\n") == std::string_view::npos;
      if (!field) break;
      s.headers.push_back({std::string(name), std::string(line)});
      if (s.headers.back().text.back() != '\n') s.headers.back().text += '\n';
    }
    pos = end;
  }
  if (head_end == std::string::npos && pos >= buf.size() &&
      buf.size() >= kMaxHead) {
    return absl::ResourceExhaustedError(
        StrCat(path, ": header section over ", kMaxHead, " bytes"));
  }
  if (head_end != std::string::npos && pos == head_end) {
    s.separator = true;
    s.body_offset = head_end + 1;
  } else {
    s.body_offset = std::min<uint64_t>(pos, s.file_size);
  }
  return s;
}

std::string Unbracket(std::string_view a) {
  a = Trim(a);
  if (a.size() >= 2 && a.front() == '<' && a.back() == '>') {
    a = a.substr(1, a.size() - 2);
  }
  return std::string(a);
}

// A header as a milter gave it, as message text: LF endings, every
// continuation line starting with white space, one newline at the end.
std::string HeaderText(const Modification& m, bool leading_space) {
  std::string v;
  for (size_t i = 0; i < m.value.size(); ++i) {
    char c = m.value[i];
    if (c == '\r') continue;
    v += c;
    if (c == '\n' && i + 1 < m.value.size() && m.value[i + 1] != ' ' &&
        m.value[i + 1] != '\t' && m.value[i + 1] != '\r') {
      v += '\t';
    }
  }
  while (!v.empty() && (v.back() == '\n' || v.back() == '\t')) v.pop_back();
  return StrCat(m.name, ":", leading_space ? "" : " ", v, "\n");
}

void ApplyHeader(const Modification& m, bool leading_space,
                 std::vector<HeaderField>* h) {
  switch (m.type) {
    case Modification::Type::kAddHeader:
      h->push_back(HeaderField{m.name, HeaderText(m, leading_space)});
      break;
    case Modification::Type::kInsertHeader: {
      size_t at = std::min<size_t>(m.index, h->size());
      h->insert(h->begin() + static_cast<ptrdiff_t>(at),
                HeaderField{m.name, HeaderText(m, leading_space)});
      break;
    }
    case Modification::Type::kChangeHeader: {
      uint32_t want = std::max<uint32_t>(m.index, 1), seen = 0;
      for (auto it = h->begin(); it != h->end(); ++it) {
        if (!EqualsIgnoreCase(it->name, m.name) || ++seen != want) continue;
        if (m.value.empty()) {
          h->erase(it);
        } else {
          Modification same = m;
          same.name = it->name;  // the field keeps its spelling
          it->text = HeaderText(same, leading_space);
        }
        return;
      }
      if (!m.value.empty()) {
        h->push_back(HeaderField{m.name, HeaderText(m, leading_space)});
      }
      break;
    }
    default:
      break;
  }
}

// NOTIFY= and ORCPT= of an addrcpt_par/chgfrom argument string.
void ApplyRcptArgs(std::string_view args, mail::EnvelopeRecipient* r) {
  for (auto w : SplitWhitespace(args)) {
    std::string_view v = w;
    if (StartsWithIgnoreCase(v, "NOTIFY=")) {
      r->notify = std::string(v.substr(7));
    } else if (StartsWithIgnoreCase(v, "ORCPT=")) {
      auto d = mail::XtextDecode(v.substr(6));
      if (d.ok()) r->orcpt = *d;
    }
  }
}

void ApplyEnvelope(const Modification& m, mail::Envelope* env,
                   std::vector<std::string>* log) {
  std::string addr = Unbracket(m.name);
  auto& rs = env->recipients;
  switch (m.type) {
    case Modification::Type::kChangeFrom:
      log->push_back(
          StrCat("sender <", env->sender, "> changed to <", addr, ">"));
      env->sender = addr;
      break;
    case Modification::Type::kAddRcpt:
    case Modification::Type::kAddRcptPar: {
      for (const auto& r : rs) {
        if (EqualsIgnoreCase(r.address, addr)) return;
      }
      mail::EnvelopeRecipient r;
      r.address = addr;
      ApplyRcptArgs(m.args, &r);
      rs.push_back(std::move(r));
      log->push_back(StrCat("recipient <", addr, "> added"));
      break;
    }
    case Modification::Type::kDelRcpt: {
      auto it = std::remove_if(rs.begin(), rs.end(), [&](const auto& r) {
        return EqualsIgnoreCase(r.address, addr);
      });
      if (it != rs.end())
        log->push_back(StrCat("recipient <", addr, "> removed"));
      rs.erase(it, rs.end());
      break;
    }
    default:
      break;
  }
}

absl::Status CopyRange(int from, uint64_t offset, uint64_t end, int to,
                       const std::string& path, uint64_t* written) {
  std::string buf(kReadChunk, '\0');
  while (offset < end) {
    size_t want = std::min<uint64_t>(kReadChunk, end - offset);
    ssize_t n = ::pread(from, buf.data(), want, static_cast<off_t>(offset));
    if (n < 0) return fs::ErrnoStatus("read", path, errno);
    if (n == 0) return absl::DataLossError(StrCat(path, ": shorter than said"));
    std::string_view chunk(buf.data(), static_cast<size_t>(n));
    if (auto st = fs::WriteAll(to, chunk, path); !st.ok()) return st;
    offset += static_cast<uint64_t>(n);
    *written += static_cast<uint64_t>(n);
  }
  return absl::OkStatus();
}

Reply MakeR(int code, std::string enhanced, std::vector<std::string> text) {
  Reply r;
  r.code = code;
  r.enhanced = std::move(enhanced);
  r.lines = std::move(text);
  return r;
}

Reply TempFailReply() {
  return MakeR(451, "4.7.1", {"Service unavailable - try again later"});
}

// The reply for a milter's reject or tempfail: its own reply code when it
// gave one, else 550 5.7.1 `reject_text` or 451 4.7.1.
Reply RejectReply(const Result& r, const char* reject_text) {
  bool perm = r.action == Result::Action::kReject;
  if (r.code != 0) {
    return MakeR(
        r.code, r.enhanced.empty() ? (perm ? "5.7.1" : "4.7.1") : r.enhanced,
        r.text.empty() ? std::vector<std::string>{"Rejected"} : r.text);
  }
  if (perm) return MakeR(550, "5.7.1", {reject_text});
  return TempFailReply();
}

const char* DefaultNote(const milter::Spec& s) {
  return s.on_failure == milter::Spec::Default::kAccept ? " (default accept)"
                                                        : " (default tempfail)";
}

const char* StageName(CheckKind k) {
  switch (k) {
    case CheckKind::kConnect:
      return "connect";
    case CheckKind::kHelo:
      return "HELO";
    case CheckKind::kMailFrom:
      return "MAIL";
    case CheckKind::kRcptTo:
      return "RCPT";
    case CheckKind::kData:
      return "DATA";
    case CheckKind::kMessage:
      return "end of data";
    default:
      return "other";
  }
}

}  // namespace

absl::Status RewriteStaged(const std::string& path, const StagedEdits& edits,
                           size_t* recipients, std::vector<std::string>* log) {
  fs::UniqueFd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in.valid()) return fs::ErrnoStatus("open", path, errno);
  auto staged = ReadStaged(in.get(), path);
  if (!staged.ok()) return staged.status();
  for (const Modification& m : edits.headers) {
    ApplyHeader(m, edits.leading_space, &staged->headers);
  }
  for (const Modification& m : edits.envelope) {
    ApplyEnvelope(m, &staged->envelope, log);
  }
  *recipients = staged->envelope.recipients.size();

  std::string tmp = StrCat(path, ".milter");
  ::unlink(tmp.c_str());  // a leftover of a crash
  fs::UniqueFd out(
      ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640));
  if (!out.valid()) return fs::ErrnoStatus("create", tmp, errno);
  ::flock(out.get(), LOCK_EX);  // a live writer (see RemoveAbandoned...)
  auto fail = [&](absl::Status st) {
    ::unlink(tmp.c_str());
    return st;
  };
  size_t size_offset = 0;
  mail::Envelope env = staged->envelope;
  env.size = 0;
  std::string head = mail::SerializeEnvelope(env, &size_offset);
  uint64_t size = 0;
  std::string text;
  for (const HeaderField& h : staged->headers) text += h.text;
  if (staged->separator || !edits.body_path.empty()) text += '\n';
  size += text.size();
  if (auto st = fs::WriteAll(out.get(), head + text, tmp); !st.ok()) {
    return fail(st);
  }
  absl::Status st;
  if (!edits.body_path.empty()) {
    fs::UniqueFd body(::open(edits.body_path.c_str(), O_RDONLY | O_CLOEXEC));
    struct stat bs;
    if (!body.valid() || ::fstat(body.get(), &bs) != 0) {
      return fail(fs::ErrnoStatus("open", edits.body_path, errno));
    }
    st = CopyRange(body.get(), 0, static_cast<uint64_t>(bs.st_size), out.get(),
                   tmp, &size);
  } else {
    st = CopyRange(in.get(), staged->body_offset, staged->file_size, out.get(),
                   tmp, &size);
  }
  if (!st.ok()) return fail(st);
  std::string field = mail::FormatSizeField(size);
  if (::pwrite(out.get(), field.data(), field.size(),
               static_cast<off_t>(size_offset)) !=
      static_cast<ssize_t>(field.size())) {
    return fail(fs::ErrnoStatus("pwrite", tmp, errno));
  }
  if (auto s = fs::Fsync(out.get(), tmp); !s.ok()) return fail(s);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return fail(fs::ErrnoStatus("rename to", path, errno));
  }
  return absl::OkStatus();
}

// ---- the session ---------------------------------------------------------

struct MilterSession::Entry {
  explicit Entry(milter::Spec spec) : client(std::move(spec)) {}
  milter::Client client;
  bool failed = false;        // down or broken: the default applies
  bool done_session = false;  // accepted at connect/helo
  bool done_message = false;  // accepted (or finished) for this message
  bool in_message = false;    // MAIL sent, end of message not yet
  const milter::Spec& spec() const { return client.spec(); }
};

std::unique_ptr<MilterSession> MilterSession::Make(
    const std::vector<milter::Spec>& specs, smtp::Listener listener,
    std::string hostname, Logger& log) {
  std::string l = ListenerName(listener);
  std::unique_ptr<MilterSession> ms(
      new MilterSession(std::move(hostname), log));
  for (const milter::Spec& s : specs) {
    if (!s.listeners.empty() &&
        std::find(s.listeners.begin(), s.listeners.end(), l) ==
            s.listeners.end()) {
      continue;
    }
    ms->entries_.push_back(std::make_unique<Entry>(s));
  }
  if (ms->entries_.empty()) return nullptr;
  return ms;
}

MilterSession::MilterSession(std::string hostname, Logger& log)
    : hostname_(std::move(hostname)), log_(log) {}

MilterSession::~MilterSession() {
  for (auto& e : entries_) e->client.Close(/*abort_first=*/e->in_message);
}

bool MilterSession::TakeDiscard() {
  bool d = discard_taken_;
  discard_taken_ = false;
  return d;
}

Verdict MilterSession::Check(const smtp::Session& session,
                             const smtp::Check& check, Verdict policy) {
  if (policy.outcome == Verdict::Outcome::kReject) return policy;
  switch (check.kind) {
    case CheckKind::kConnect:
    case CheckKind::kHelo:
    case CheckKind::kMailFrom:
    case CheckKind::kRcptTo:
    case CheckKind::kData:
      return Stage(session, check, std::move(policy));
    case CheckKind::kMessage:
      return Message(session, check, std::move(policy));
    default:
      return policy;
  }
}

namespace {

milter::Macros ConnectMacros(const smtp::Session& s,
                             const std::string& hostname) {
  const smtp::ClientInfo& c = s.client();
  std::string name = c.name.empty() ? "unknown" : c.name;
  milter::Macros m = {
      {"j", hostname},
      {"{daemon_name}", ListenerName(c.listener)},
      {"v", "zmnode"},
      {"_", StrCat(name, " [", c.addr, "]")},
      {"{client_addr}", c.addr},
      {"{client_port}", c.port},
      {"{client_name}", name},
      {"{client_ptr}", name},
      {"{if_addr}", c.local_addr},
  };
  return m;
}

}  // namespace

Verdict MilterSession::Stage(const smtp::Session& session,
                             const smtp::Check& check, Verdict v) {
  const std::string& qid = session.queue_id();
  const bool transaction = check.kind == CheckKind::kMailFrom ||
                           check.kind == CheckKind::kRcptTo ||
                           check.kind == CheckKind::kData;
  if (check.kind == CheckKind::kMailFrom) discard_ = false;
  for (auto& ep : entries_) {
    Entry& e = *ep;
    const std::string& name = e.spec().name;
    if (check.kind == CheckKind::kConnect && !e.failed) {
      absl::Status st = e.client.Open();
      if (!st.ok()) {
        e.failed = true;
        log_.Warning(qid, StrCat("milter ", name, ": cannot connect to ",
                                 e.spec().address, ": ", zm::Message(st),
                                 DefaultNote(e.spec())));
      }
    }
    if (e.failed) {
      if (e.spec().on_failure == milter::Spec::Default::kTempFail &&
          transaction) {
        log_.Info(qid, StrCat("milter ", name, ": unavailable, ",
                              StageName(check.kind), " tempfailed"));
        return Verdict::Reject(TempFailReply());
      }
      continue;
    }
    if (e.done_session) continue;
    if (check.kind == CheckKind::kMailFrom || check.kind == CheckKind::kHelo) {
      if (e.in_message) e.client.Abort();
      e.in_message = false;
      e.done_message = false;
    }
    if (e.done_message) continue;
    Result r;
    const smtp::ClientInfo& c = session.client();
    switch (check.kind) {
      case CheckKind::kConnect: {
        char family = c.addr.empty()                          ? 'U'
                      : c.addr.find(':') != std::string::npos ? '6'
                                                              : '4';
        uint16_t port = 0;
        ParseNumber(c.port, &port);
        std::string host = c.name.empty() ? StrCat("[", c.addr, "]") : c.name;
        r = e.client.Connect(ConnectMacros(session, hostname_), host, family,
                             port, c.addr);
        break;
      }
      case CheckKind::kHelo: {
        milter::Macros m;
        if (session.tls()) {
          const smtp::TlsInfo& t = session.tls_info();
          m = {{"{tls_version}", t.version},
               {"{cipher}", t.cipher},
               {"{cipher_bits}", StrCat(t.bits)},
               {"{cert_subject}", t.peer_subject}};
        }
        r = e.client.Helo(m, check.arg);
        break;
      }
      case CheckKind::kMailFrom: {
        milter::Macros m = {{"{mail_addr}", check.arg}};
        if (session.authenticated()) {
          m.push_back({"{auth_authen}", session.auth_user()});
        }
        std::vector<std::string> params;
        const smtp::MailParams& p = check.mail;
        if (p.size) params.push_back(StrCat("SIZE=", *p.size));
        if (!p.body.empty()) params.push_back(StrCat("BODY=", p.body));
        if (!p.ret.empty()) params.push_back(StrCat("RET=", p.ret));
        if (!p.envid.empty()) {
          params.push_back(StrCat("ENVID=", mail::XtextEncode(p.envid)));
        }
        if (p.smtputf8) params.push_back("SMTPUTF8");
        e.in_message = true;
        r = e.client.Mail(m, StrCat("<", check.arg, ">"), params);
        break;
      }
      case CheckKind::kRcptTo: {
        std::vector<std::string> params;
        if (!check.rcpt.notify.empty()) {
          params.push_back(StrCat("NOTIFY=", check.rcpt.notify));
        }
        if (!check.rcpt.orcpt.empty()) {
          params.push_back(
              StrCat("ORCPT=", mail::XtextEncode(check.rcpt.orcpt)));
        }
        r = e.client.Rcpt({{"{rcpt_addr}", check.arg}},
                          StrCat("<", check.arg, ">"), params);
        break;
      }
      case CheckKind::kData:
        r = e.client.Data({});
        break;
      default:
        continue;
    }
    std::string where = check.kind == CheckKind::kRcptTo
                            ? StrCat("RCPT <", check.arg, ">")
                        : check.kind == CheckKind::kMailFrom
                            ? StrCat("MAIL <", check.arg, ">")
                            : std::string(StageName(check.kind));
    switch (r.action) {
      case Result::Action::kContinue:
      case Result::Action::kSkip:
        break;
      case Result::Action::kAccept:
        if (transaction) {
          e.done_message = true;
        } else {
          e.done_session = true;
        }
        break;
      case Result::Action::kDiscard:
        log_.Info(qid, StrCat("milter ", name, ": discard at ", where));
        if (transaction) {
          discard_ = true;
        } else {
          discard_session_ = true;
        }
        break;
      case Result::Action::kFailed:
        e.failed = true;
        e.in_message = false;
        log_.Warning(qid, StrCat("milter ", name, ": ", r.error, " at ", where,
                                 DefaultNote(e.spec())));
        if (e.spec().on_failure == milter::Spec::Default::kTempFail &&
            transaction) {
          return Verdict::Reject(TempFailReply());
        }
        break;
      case Result::Action::kReject:
      case Result::Action::kTempFail: {
        Reply reply = RejectReply(r, "Command rejected");
        if (check.kind == CheckKind::kMailFrom ||
            check.kind == CheckKind::kData) {
          e.in_message = false;
        }
        log_.Info(qid, StrCat("milter ", name, ": ", where,
                              " rejected: ", reply.Summary()));
        return Verdict::Reject(std::move(reply));
      }
    }
  }
  return v;
}

Verdict MilterSession::Message(const smtp::Session& session,
                               const smtp::Check& check, Verdict v) {
  const std::string& qid = check.queue_id;
  const std::string& path = check.staged_path;
  milter::Macros id_macros = {{"i", qid}};
  std::string quarantine;
  for (auto& ep : entries_) {
    Entry& e = *ep;
    const std::string& name = e.spec().name;
    auto failed = [&](std::string why) -> std::optional<Verdict> {
      e.failed = true;
      e.in_message = false;
      e.client.Close();
      bool accept = e.spec().on_failure == milter::Spec::Default::kAccept;
      log_.Warning(qid, StrCat("milter ", name, ": ", why, " at end of data",
                               DefaultNote(e.spec())));
      if (accept) return std::nullopt;
      return Verdict::Reject(TempFailReply());
    };
    if (e.failed) {
      if (e.spec().on_failure == milter::Spec::Default::kTempFail) {
        return Verdict::Reject(TempFailReply());
      }
      continue;
    }
    if (e.done_session || e.done_message || !e.in_message) continue;
    e.in_message = false;  // whatever happens, this message ends here
    fs::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) {
      return Verdict::Reject(
          MakeR(451, "4.3.0", {"Local error reading the message"}));
    }
    auto staged = ReadStaged(fd.get(), path);
    if (!staged.ok()) {
      log_.Warning(qid,
                   StrCat("milter ", name, ": ", zm::Message(staged.status())));
      return Verdict::Reject(
          MakeR(451, "4.3.0", {"Local error reading the message"}));
    }
    // Headers, end of headers, body: each answer may end this milter's
    // part early.
    Result r;
    bool done = false;
    for (const HeaderField& h : staged->headers) {
      if (e.client.steps() & milter::step::kNoHeaders) break;
      r = e.client.Header(h.name, h.Value());
      if (r.action != Result::Action::kContinue) break;
    }
    if (r.action == Result::Action::kContinue) {
      r = e.client.EndOfHeaders(id_macros);
    }
    if (r.action == Result::Action::kContinue &&
        !(e.client.steps() & milter::step::kNoBody)) {
      std::string buf(kReadChunk, '\0'), pending;
      uint64_t off = staged->body_offset;
      while (off < staged->file_size && r.action == Result::Action::kContinue) {
        size_t want = std::min<uint64_t>(kReadChunk, staged->file_size - off);
        ssize_t n =
            ::pread(fd.get(), buf.data(), want, static_cast<off_t>(off));
        if (n <= 0) {
          return Verdict::Reject(
              MakeR(451, "4.3.0", {"Local error reading the message"}));
        }
        off += static_cast<uint64_t>(n);
        for (ssize_t i = 0; i < n; ++i) {
          if (buf[i] == '\n') pending += '\r';
          pending += buf[i];
        }
        size_t sent = 0;
        while (pending.size() - sent >= milter::kBodyChunk &&
               r.action == Result::Action::kContinue) {
          r = e.client.Body(
              std::string_view(pending).substr(sent, milter::kBodyChunk));
          sent += milter::kBodyChunk;
        }
        pending.erase(0, sent);
      }
      if (!pending.empty() && r.action == Result::Action::kContinue) {
        r = e.client.Body(pending);
      }
    }
    StagedEdits edits;
    edits.leading_space = e.client.leading_space();
    std::string body_tmp = StrCat(path, ".body");
    fs::UniqueFd body_fd;
    bool body_cr = false;  // a CR ended the previous replbody chunk
    std::string reason;
    if (r.action == Result::Action::kContinue ||
        r.action == Result::Action::kSkip) {
      auto on_mod = [&](const Modification& m) -> absl::Status {
        using T = Modification::Type;
        switch (m.type) {
          case T::kAddHeader:
          case T::kInsertHeader:
          case T::kChangeHeader:
            if (!(e.client.actions() &
                  (m.type == T::kChangeHeader ? milter::action::kChangeHeaders
                                              : milter::action::kAddHeaders))) {
              return absl::PermissionDeniedError(
                  "header change not negotiated");
            }
            if (edits.headers.size() >= 10000) {
              return absl::ResourceExhaustedError("too many header changes");
            }
            edits.headers.push_back(m);
            break;
          case T::kAddRcpt:
          case T::kAddRcptPar:
          case T::kDelRcpt:
          case T::kChangeFrom:
            if (edits.envelope.size() >= 10000) {
              return absl::ResourceExhaustedError("too many envelope changes");
            }
            edits.envelope.push_back(m);
            break;
          case T::kReplaceBody: {
            if (!body_fd.valid()) {
              ::unlink(body_tmp.c_str());
              body_fd = fs::UniqueFd(
                  ::open(body_tmp.c_str(),
                         O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640));
              if (!body_fd.valid()) {
                return fs::ErrnoStatus("create", body_tmp, errno);
              }
              edits.body_path = body_tmp;
            }
            // CRLF -> LF, across chunk boundaries.
            std::string lf;
            for (char c : m.value) {
              if (body_cr && c != '\n') lf += '\r';
              body_cr = c == '\r';
              if (!body_cr) lf += c;
            }
            return fs::WriteAll(body_fd.get(), lf, body_tmp);
          }
          case T::kQuarantine:
            reason = m.value.empty() ? "quarantined" : m.value;
            break;
        }
        return absl::OkStatus();
      };
      r = e.client.EndOfMessage(id_macros, on_mod);
      done = true;
    }
    if (body_fd.valid()) {
      if (body_cr) (void)fs::WriteAll(body_fd.get(), "\r", body_tmp);
      body_fd.reset();
    }
    struct BodyTmp {
      std::string path;
      ~BodyTmp() { ::unlink(path.c_str()); }
    } body_cleanup{body_tmp};
    switch (r.action) {
      case Result::Action::kContinue:
      case Result::Action::kSkip:
      case Result::Action::kAccept:
        break;
      case Result::Action::kDiscard:
        log_.Info(qid, StrCat("milter ", name, ": discard at end of data"));
        discard_ = true;
        break;
      case Result::Action::kFailed:
        if (auto f = failed(r.error)) return *f;
        continue;
      case Result::Action::kReject:
      case Result::Action::kTempFail: {
        Reply reply = RejectReply(r, "Message content rejected");
        log_.Info(qid, StrCat("milter ", name,
                              ": message rejected: ", reply.Summary()));
        return Verdict::Reject(std::move(reply));
      }
    }
    if (!done) continue;
    if (!reason.empty() && quarantine.empty()) {
      quarantine = StrCat("milter ", name, ": ", reason);
      log_.Info(qid, StrCat("milter ", name, ": quarantine: ", reason));
    }
    if (edits.headers.empty() && edits.envelope.empty() &&
        edits.body_path.empty()) {
      continue;
    }
    std::vector<std::string> changes;
    size_t recipients = 0;
    absl::Status st = RewriteStaged(path, edits, &recipients, &changes);
    if (!st.ok()) {
      log_.Warning(qid, StrCat("milter ", name,
                               ": rewriting the message: ", zm::Message(st)));
      return Verdict::Reject(
          MakeR(451, "4.3.0", {"Local error writing the message"}));
    }
    for (const Modification& m : edits.headers) {
      changes.push_back(StrCat(
          m.type == Modification::Type::kAddHeader      ? "header added: "
          : m.type == Modification::Type::kInsertHeader ? "header inserted: "
          : m.value.empty()                             ? "header deleted: "
                                                        : "header changed: ",
          m.name));
    }
    if (!edits.body_path.empty()) changes.push_back("body replaced");
    for (const std::string& c : changes) {
      log_.Info(qid, StrCat("milter ", name, ": ", c));
    }
    if (recipients == 0) {
      log_.Info(qid, StrCat("milter ", name,
                            ": no recipients left, message discarded"));
      discard_ = true;
    }
  }
  if (discard_ || discard_session_) {
    discard_ = false;
    discard_taken_ = true;
    return Verdict::Accept();
  }
  if (!quarantine.empty() && v.outcome != Verdict::Outcome::kFreeze) {
    v.outcome = Verdict::Outcome::kFreeze;
    v.freeze_reason = quarantine;
  }
  (void)session;
  return v;
}

}  // namespace zm::smtpserver
