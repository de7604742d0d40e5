// Submit(): read the message, build the envelope and the added header
// fields, and commit it to the spool.
#include <sys/time.h>
#include <sysexits.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "node/common/strings.h"
#include "node/mail/envelope.h"
#include "node/mail/rfc5322.h"
#include "node/sendmail/input.h"
#include "node/sendmail/submit.h"
#include "node/spool/spool.h"

namespace zm::submit {
namespace {

constexpr size_t kReadChunk = 64 * 1024;
// Room for rmail's From lines in front of the header section.
constexpr size_t kFromLinesSlack = 64 * 1024;

// Reads the input through the normalizer, one chunk per call.
class InputReader {
 public:
  InputReader(int fd, bool dot_terminates) : fd_(fd), norm_(dot_terminates) {}

  // Appends the next normalized chunk to *out; false at the end.
  absl::StatusOr<bool> Next(std::string* out) {
    if (finished_) return false;
    char buf[kReadChunk];
    for (;;) {
      ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        return WithSysexit(absl::UnavailableError(StrCat(
                               "reading the message: ", std::strerror(errno))),
                           EX_IOERR);
      }
      if (n == 0) {
        norm_.Finish(out);
        finished_ = true;
        return false;
      }
      size_t before = out->size();
      norm_.Feed(std::string_view(buf, static_cast<size_t>(n)), out);
      if (norm_.done()) {
        finished_ = true;
        return false;
      }
      if (out->size() > before) return true;
    }
  }
  bool finished() const { return finished_; }

 private:
  int fd_;
  InputNormalizer norm_;
  bool finished_ = false;
};

bool IsAtextOrSpace(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
      (c >= '0' && c <= '9') || c == ' ') {
    return true;
  }
  if (static_cast<unsigned char>(c) >= 0x80) return true;
  return std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) !=
         std::string_view::npos;
}

std::string FromField(const std::string& name, const std::string& addr) {
  if (name.empty()) return StrCat("From: ", addr, "\n");
  bool plain = true;
  for (char c : name) plain = plain && IsAtextOrSpace(c);
  if (plain) return StrCat("From: ", name, " <", addr, ">\n");
  std::string quoted = "\"";
  for (char c : name) {
    if (c == '"' || c == '\\') quoted += '\\';
    if (c == '\r' || c == '\n') c = ' ';
    quoted += c;
  }
  quoted += '"';
  return StrCat("From: ", quoted, " <", addr, ">\n");
}

}  // namespace

absl::StatusOr<SubmitResult> Submit(const SubmitContext& ctx,
                                    const SubmitRequest& request, int in_fd,
                                    Logger& log) {
  const SubmitLimits& limits = request.limits;
  InputReader reader(in_fd, request.dot_terminates);

  // 1. The top of the message: enough to hold the whole header section.
  std::string text;
  size_t prefix_limit = limits.headers.max_header_bytes + kFromLinesSlack;
  size_t searched = 0;
  for (;;) {
    auto more = reader.Next(&text);
    if (!more.ok()) return more.status();
    if (!*more) break;
    size_t from = searched > 0 ? searched - 1 : 0;
    if (text.find("\n\n", from) != std::string::npos ||
        text.size() >= prefix_limit) {
      break;
    }
    searched = text.size();
  }
  const bool at_eof = reader.finished();

  // 2. rmail's From lines; sendmail drops a leading mbox From line.
  std::string sender;
  bool sender_given = request.sender_given;
  size_t offset = 0;
  if (request.uucp_from) {
    auto from = ParseUucpFromLines(text);
    if (from.ok()) {
      sender = from->sender;
      sender_given = true;
      offset = from->length;
    } else if (!absl::IsNotFound(from.status())) {
      return WithSysexit(from.status(), EX_DATAERR);
    }
  } else {
    offset = LeadingFromLineLength(text);
  }
  if (!sender_given) {
    sender = StrCat(ctx.login, "@", ctx.mydomain);
  } else if (!request.uucp_from) {
    sender = request.sender;
  }

  // 3. The header section.
  auto hb = ParseHeaderBlock(std::string_view(text).substr(offset), at_eof,
                             limits.headers);
  if (!hb.ok()) return WithSysexit(hb.status(), EX_DATAERR);

  // 4. Recipients: -t adds the header's to the arguments' (Postfix does
  // the same; sendmail 8 would instead drop the arguments' from the list).
  std::vector<std::string> candidates;
  if (request.extract_recipients) {
    auto from_headers = HeaderRecipients(*hb);
    if (!from_headers.ok()) {
      return WithSysexit(from_headers.status(), EX_DATAERR);
    }
    candidates = *std::move(from_headers);
  }
  auto args = ParseRecipientArgs(request.recipients);
  if (!args.ok()) return WithSysexit(args.status(), EX_USAGE);
  candidates.insert(candidates.end(), args->begin(), args->end());
  std::vector<std::string> recipients;
  std::set<std::string> seen;
  for (auto& r : candidates) {
    if (seen.insert(ToLower(r)).second) recipients.push_back(std::move(r));
  }
  if (recipients.empty()) {
    return WithSysexit(absl::InvalidArgumentError("no recipients"), EX_USAGE);
  }
  if (recipients.size() > limits.max_recipients) {
    return WithSysexit(absl::InvalidArgumentError(StrCat(
                           "more than ", limits.max_recipients, " recipients")),
                       EX_USAGE);
  }

  // 5. The envelope, and a place in the spool.
  struct timeval now;
  ::gettimeofday(&now, nullptr);
  mail::Envelope env;
  env.arrival_usec = static_cast<int64_t>(now.tv_sec) * 1000000 + now.tv_usec;
  env.sender = sender;
  for (const auto& r : recipients) {
    env.recipients.push_back({r, request.notify, ""});
  }
  env.envid = request.envid;
  env.ret = request.ret;
  env.bodytype = request.bodytype;
  env.protocol = request.protocol;
  env.local_user = ctx.login;
  spool::Spool spool(ctx.node.spool(), ctx.node_tag);
  auto sub = spool.Begin(env);
  if (!sub.ok()) return WithSysexit(sub.status(), EX_TEMPFAIL);
  const std::string qid = (*sub)->queue_id();

  // 6. The header section as stored: Received: first, the caller's fields
  // without Bcc:, then what is missing.
  std::string head =
      StrCat("Received: by ", ctx.hostname, " (zmnode, from userid ", ctx.uid,
             ")\n\tid ", qid, "; ", mail::Rfc5322Date(now.tv_sec), "\n");
  for (const auto& f : hb->fields) {
    if (!IsBlindField(f.name)) head += f.raw;
  }
  if (!hb->Has("From")) {
    std::string addr = (sender_given && !sender.empty())
                           ? sender
                           : StrCat(ctx.login, "@", ctx.mydomain);
    if (addr.find('@') == std::string::npos &&
        addr.find('!') == std::string::npos) {
      StrAppend(&addr, "@", ctx.mydomain);
    }
    std::string name =
        !request.full_name.empty() ? request.full_name : ctx.gecos_name;
    head += FromField(name, addr);
  }
  if (!hb->Has("Date"))
    StrAppend(&head, "Date: ", mail::Rfc5322Date(now.tv_sec), "\n");
  if (!hb->Has("Message-ID")) {
    StrAppend(&head, "Message-ID: <", qid, "@", ctx.hostname, ">\n");
  }
  head += '\n';

  // 7. The message: header, the body read so far, then the rest of input.
  uint64_t total = 0;
  auto append = [&](std::string_view data) -> absl::Status {
    total += data.size();
    if (total > limits.max_message_bytes) {
      return WithSysexit(
          absl::InvalidArgumentError(StrCat(
              "message larger than ", limits.max_message_bytes, " bytes")),
          EX_DATAERR);
    }
    if (auto s = (*sub)->Append(data); !s.ok()) {
      return WithSysexit(s, EX_TEMPFAIL);
    }
    return absl::OkStatus();
  };
  if (auto s = append(head); !s.ok()) return s;
  if (auto s = append(std::string_view(text).substr(offset + hb->end));
      !s.ok()) {
    return s;
  }
  text.clear();
  text.shrink_to_fit();
  std::string chunk;
  for (;;) {
    chunk.clear();
    auto more = reader.Next(&chunk);
    if (!more.ok()) return more.status();
    if (auto s = append(chunk); !s.ok()) return s;
    if (!*more) break;
  }
  if (auto s = (*sub)->Commit(); !s.ok()) return WithSysexit(s, EX_TEMPFAIL);

  log.Info(qid, StrCat("uid=", ctx.uid, " from=<", sender, ">"));
  SubmitResult result;
  result.queue_id = qid;
  result.sender = sender;
  result.recipients = std::move(recipients);
  result.size = total;
  return result;
}

}  // namespace zm::submit
