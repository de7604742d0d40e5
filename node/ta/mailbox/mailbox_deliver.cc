// The mailbox agent: flags, choosing the kind of delivery, trace headers.
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/config/mail_conf.h"
#include "node/ta/mailbox/mailbox.h"
#include "node/ta/mailbox/mailbox_internal.h"

namespace zm::mailbox {
namespace {

using internal::Content;
using internal::Identity;

constexpr size_t kMaxUserName = 255;
// Loop detection looks at this much of the header block at most.
constexpr size_t kMaxHeaderScan = 1u << 20;

bool ParseSeconds(std::string_view s, int* out) {
  return ParseNumber(s, out) && *out > 0 && *out <= 86400 * 7;
}

std::optional<Identity> FromPasswd(const struct passwd* pw) {
  if (pw == nullptr) return std::nullopt;
  Identity id;
  id.set = true;
  id.uid = pw->pw_uid;
  id.gid = pw->pw_gid;
  id.name = pw->pw_name;
  id.home = pw->pw_dir != nullptr ? pw->pw_dir : "/";
  return id;
}

std::optional<Identity> LookupUser(const std::string& name) {
  return FromPasswd(::getpwnam(name.c_str()));
}

// A mail-store user name must name one entry right inside the store.
bool ValidUserName(std::string_view u) {
  if (u.empty() || u.size() > kMaxUserName || u.front() == '.') return false;
  for (char c : u) {
    unsigned char b = static_cast<unsigned char>(c);
    if (c == '/' || b < 0x21 || b == 0x7f) return false;
  }
  return true;
}

std::string OneLine(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c != '\r' && c != '\n') out += c;
  }
  return out;
}

std::string_view LocalPart(std::string_view address) {
  auto at = address.rfind('@');
  return at == std::string_view::npos ? address : address.substr(0, at);
}

}  // namespace

absl::StatusOr<Options> ParseFlags(const NodeDir& node,
                                   const std::vector<std::string>& args) {
  Options o;
  o.mail_dir = node.mail();
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](std::string* out) -> bool {
      if (i + 1 >= args.size()) return false;
      *out = args[++i];
      return true;
    };
    std::string v;
    if (a == "-8") {
      o.eight_bit = true;
    } else if (a == "-M") {
      o.new_maildir = true;
    } else if (a == "-d") {
      if (!value(&o.mail_dir) || o.mail_dir.empty()) {
        return absl::InvalidArgumentError("-d needs a folder");
      }
    } else if (a == "-t") {
      if (!value(&v) || !ParseSeconds(v, &o.pipe_timeout_s)) {
        return absl::InvalidArgumentError("-t needs seconds (1..604800)");
      }
    } else if (a == "-l") {
      if (!value(&v) || !ParseSeconds(v, &o.lock_timeout_s)) {
        return absl::InvalidArgumentError("-l needs seconds (1..604800)");
      }
    } else if (a == "-u") {
      if (!value(&o.run_as) || o.run_as.empty()) {
        return absl::InvalidArgumentError("-u needs a user name");
      }
    } else {
      return absl::InvalidArgumentError(
          StrCat("unknown argument '", a,
                 "' (usage: mailbox [-C DIR] [-8] [-M] [-d DIR] [-t SECS] "
                 "[-l SECS] [-u USER])"));
    }
  }
  while (o.mail_dir.size() > 1 && o.mail_dir.back() == '/') {
    o.mail_dir.pop_back();
  }
  std::string conf = node.etc_file("mail.conf");
  if (fs::Exists(conf)) {
    auto mc = config::ParseMailConf(conf);
    // A configuration error, not misuse: exit 1, not 64.
    if (!mc.ok()) return absl::FailedPreconditionError(Message(mc.status()));
    o.hostname = mc->hostname;
  }
  if (o.hostname.empty()) {
    char host[256] = {0};
    o.hostname = ::gethostname(host, sizeof host - 1) == 0 && host[0] != 0
                     ? host
                     : "localhost";
  }
  return o;
}

std::string FromLine(std::string_view sender, std::time_t when) {
  std::string who = sender.empty() ? "MAILER-DAEMON" : std::string(sender);
  for (char& c : who) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') c = '_';
  }
  struct tm tm;
  ::gmtime_r(&when, &tm);
  char date[64];
  std::strftime(date, sizeof date, "%a %b %e %H:%M:%S %Y", &tm);
  return StrCat("From ", who, " ", date, "\n");
}

void AppendQuoted(std::string_view text, bool* at_line_start,
                  std::string* out) {
  size_t pos = 0;
  while (pos < text.size()) {
    if (*at_line_start) {
      size_t p = pos;
      while (p < text.size() && text[p] == '>') ++p;
      if (text.substr(p, 5) == "From ") out->push_back('>');
    }
    size_t nl = text.find('\n', pos);
    size_t end = nl == std::string_view::npos ? text.size() : nl + 1;
    out->append(text.substr(pos, end - pos));
    *at_line_start = nl != std::string_view::npos;
    pos = end;
  }
}

std::string TraceHeaders(std::string_view sender,
                         std::string_view delivered_to) {
  std::string out = StrCat("Return-Path: <", OneLine(sender), ">\n");
  if (!delivered_to.empty()) {
    StrAppend(&out, "Delivered-To: ", OneLine(delivered_to), "\n");
  }
  return out;
}

bool HasDeliveredTo(std::string_view message, std::string_view address) {
  message = message.substr(0, kMaxHeaderScan);
  size_t pos = 0;
  while (pos < message.size()) {
    size_t nl = message.find('\n', pos);
    std::string_view line = message.substr(
        pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;  // end of the header block
    std::string_view rest = line;
    if (StartsWithIgnoreCase(rest, "Delivered-To:")) {
      rest.remove_prefix(13);
      std::string_view v = Trim(rest);
      if (v.size() >= 2 && v.front() == '<' && v.back() == '>') {
        v = v.substr(1, v.size() - 2);
      }
      if (EqualsIgnoreCase(v, address)) return true;
    }
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  return false;
}

MailboxAgent::MailboxAgent(Options opts, const NodeDir& node, Logger& log)
    : opts_(std::move(opts)), node_(node), log_(log) {}

// Stores into a Maildir folder or an mbox file, with the agent's limits.
static ta::Result Store(const Options& opts, const std::string& path,
                        bool maildir, bool strict, const Identity& owner,
                        std::string_view relay,
                        const internal::Content& content) {
  if (maildir) {
    internal::MaildirRequest req;
    req.dir = path;
    req.create = true;  // a folder there is a Maildir: complete it
    req.owner = owner;
    req.hostname = opts.hostname;
    req.relay = std::string(relay);
    return internal::DeliverMaildir(req, content);
  }
  internal::MboxRequest req;
  req.path = path;
  req.strict = strict;
  req.owner = owner;
  req.lock_timeout_s = opts.lock_timeout_s;
  req.dotlock_stale_s = opts.dotlock_stale_s;
  req.relay = std::string(relay);
  return internal::DeliverMbox(req, content);
}

ta::Result MailboxAgent::Deliver(const ta::Delivery& d) {
  const mail::ControlRecipient& r = d.recipient;
  std::string target = r.user.empty() ? r.host : r.user;
  bool is_pipe = d.host == "pipe" || (!target.empty() && target[0] == '|');
  bool is_file =
      !is_pipe && (d.host == "file" || (!target.empty() && target[0] == '/'));

  std::string delivered_to = r.orig;
  if (delivered_to.empty() && !is_pipe && !is_file) {
    delivered_to = StrCat(target, "@", opts_.hostname);
  }
  if (!delivered_to.empty() && HasDeliveredTo(d.message, delivered_to)) {
    return ta::Result::Error("5.4.6", "local",
                             StrCat("mail forwarding loop for ", delivered_to));
  }
  std::string prefix = TraceHeaders(d.control.sender, delivered_to);
  Content content{prefix, d.message, d.control.sender};

  // |command and /file targets come from the aliases file: when running as
  // root they run as its owner (or nobody), never as root by accident.
  auto alias_identity = [&]() -> absl::StatusOr<Identity> {
    if (::geteuid() != 0) return Identity{};
    std::optional<Identity> id;
    if (!opts_.run_as.empty()) {
      id = LookupUser(opts_.run_as);
      if (!id) {
        return absl::NotFoundError(
            StrCat("run-as user '", opts_.run_as, "' is unknown"));
      }
    } else {
      struct stat st;
      std::string aliases = node_.etc_file("aliases");
      if (::stat(aliases.c_str(), &st) == 0 && st.st_uid != 0) {
        id = FromPasswd(::getpwuid(st.st_uid));
      }
      if (!id) id = LookupUser("nobody");
      if (!id) return absl::NotFoundError("no user 'nobody' to run as");
    }
    if (id->uid == 0) return Identity{};  // explicitly root
    return *id;
  };

  if (is_pipe) {
    std::string_view cmd = Trim(target);
    if (!cmd.empty() && cmd[0] == '|') cmd.remove_prefix(1);
    cmd = Trim(cmd);
    if (cmd.empty()) return ta::Result::Error("5.3.0", "pipe", "empty command");
    auto who = alias_identity();
    if (!who.ok())
      return ta::Result::Deferred("4.3.0", "pipe", Message(who.status()));
    internal::PipeRequest req;
    req.command = std::string(cmd);
    req.run_as = *who;
    req.timeout_s = opts_.pipe_timeout_s;
    req.cwd = "/";
    std::string rcpt = delivered_to.empty() ? target : delivered_to;
    std::string user(LocalPart(rcpt));
    std::string home = "/";
    if (auto pw = LookupUser(user)) {
      home = pw->home;
    } else if (who->set) {
      home = who->home;
    }
    req.env = {
        StrCat("SENDER=", OneLine(d.control.sender)),
        StrCat("RECIPIENT=", OneLine(rcpt)),
        StrCat("USER=", OneLine(user)),
        StrCat("HOME=", home),
        "PATH=/usr/local/bin:/usr/bin:/bin",
        "SHELL=/bin/sh",
    };
    return internal::DeliverPipe(req, content);
  }

  if (is_file) {
    if (target.empty() || target[0] != '/') {
      return ta::Result::Error("5.1.3", "file",
                               StrCat("not an absolute path: ", target));
    }
    auto who = alias_identity();
    if (!who.ok())
      return ta::Result::Deferred("4.3.0", "file", Message(who.status()));
    internal::ScopedIdentity as(*who);
    if (!as.ok()) {
      return ta::Result::Deferred("4.3.0", "file",
                                  StrCat("cannot switch to user ", who->name));
    }
    bool maildir = target.back() == '/';
    return Store(opts_, maildir ? target.substr(0, target.size() - 1) : target,
                 maildir, /*strict=*/false, Identity{}, "file", content);
  }

  // A user's mailbox in the mail store.
  if (!ValidUserName(target)) {
    return ta::Result::Error("5.1.3", "local",
                             StrCat("bad mailbox name '", target, "'"));
  }
  std::string path = StrCat(opts_.mail_dir, "/", target);
  std::optional<Identity> pw = LookupUser(target);
  Identity owner;
  if (pw && ::geteuid() == 0) owner = *pw;
  struct stat st;
  bool maildir = false;
  if (::lstat(path.c_str(), &st) == 0) {
    maildir = S_ISDIR(st.st_mode);
  } else if (errno == ENOENT) {
    if (!pw) return ta::Result::Error("5.1.1", "local", "no such user");
    maildir = opts_.new_maildir;
  } else {
    return internal::ErrnoResult(errno, "lstat", path, "local");
  }
  return Store(opts_, path, maildir, /*strict=*/true, owner, "local", content);
}

namespace internal {

ta::Result ErrnoResult(int err, std::string_view what, std::string_view path,
                       std::string_view relay) {
  std::string text = StrCat(what, " ", path, ": ", std::strerror(err));
  switch (err) {
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
      return ta::Result::Deferred("4.2.2", std::string(relay),
                                  StrCat("mailbox full: ", text));
    case ELOOP:
    case EISDIR:
    case ENOTDIR:
      return ta::Result::Error("5.2.0", std::string(relay), text);
    default:
      return ta::Result::Deferred("4.3.0", std::string(relay), text);
  }
}

ScopedIdentity::ScopedIdentity(const Identity& id) {
  if (!id.set || ::geteuid() != 0) return;
  egid_ = ::getegid();
  int n = ::getgroups(0, nullptr);
  if (n > 0) {
    groups_.resize(static_cast<size_t>(n));
    n = ::getgroups(n, groups_.data());
    groups_.resize(n > 0 ? static_cast<size_t>(n) : 0);
  }
  gid_t g = id.gid;
  if (::setgroups(1, &g) != 0 || ::setegid(id.gid) != 0 ||
      ::seteuid(id.uid) != 0) {
    ok_ = false;
  }
  switched_ = true;
}

ScopedIdentity::~ScopedIdentity() {
  if (!switched_) return;
  // Back to root; failing here would leave the agent crippled: stop.
  if (::seteuid(0) != 0 || ::setegid(egid_) != 0 ||
      ::setgroups(groups_.size(), groups_.data()) != 0) {
    std::abort();
  }
}

}  // namespace internal
}  // namespace zm::mailbox
