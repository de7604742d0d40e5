#include "node/ta/vacation/vacation.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <iostream>
#include <iterator>

#include "node/common/fs.h"
#include "node/common/node_dir.h"
#include "node/common/strings.h"

namespace zm::vacation {
namespace {

constexpr size_t kMaxMessage = 1 << 20;  // we only need the headers
constexpr int kExitUsage = 64;

// Header fields, unfolded, name lower-cased.
std::vector<std::pair<std::string, std::string>> Fields(
    std::string_view headers) {
  std::vector<std::pair<std::string, std::string>> out;
  for (std::string_view line : Split(headers, '\n')) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;
    if ((line[0] == ' ' || line[0] == '\t') && !out.empty()) {
      out.back().second += StrCat(" ", Trim(line));
      continue;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    out.emplace_back(ToLower(Trim(line.substr(0, colon))),
                     std::string(Trim(line.substr(colon + 1))));
  }
  return out;
}

std::string Field(std::string_view headers, std::string_view name) {
  for (auto& [n, v] : Fields(headers)) {
    if (n == name) return v;
  }
  return "";
}

bool Contains(std::string_view hay, std::string_view needle) {
  return ToLower(hay).find(ToLower(needle)) != std::string::npos;
}

}  // namespace

std::optional<std::string> SkipReason(const Options& opts,
                                      std::string_view sender,
                                      std::string_view headers) {
  std::string s = ToLower(Trim(sender));
  if (s.empty() || s == "<>") return "null sender";
  std::string local = s.substr(0, s.find('@'));
  for (std::string_view bad : {"mailer-daemon", "postmaster", "listserv",
                               "majordomo", "noreply", "no-reply"}) {
    if (local == bad) return StrCat("sender is ", bad);
  }
  if (local.starts_with("owner-") || local.ends_with("-request") ||
      local.starts_with("bounce")) {
    return "sender is a list or bounce address";
  }
  for (auto& [name, value] : Fields(headers)) {
    if (name == "auto-submitted" && ToLower(value) != "no") {
      return "Auto-Submitted message";
    }
    if (name == "precedence") {
      std::string v = ToLower(value);
      if (v == "bulk" || v == "list" || v == "junk") return "Precedence " + v;
    }
    if (name.starts_with("list-")) return "mailing list message";
  }
  std::string to = Field(headers, "to") + "," + Field(headers, "cc");
  bool named = Contains(to, opts.user);
  for (const std::string& a : opts.aliases) named = named || Contains(to, a);
  if (!named) return "not addressed to the user in To:/Cc:";
  return std::nullopt;
}

std::string BuildReply(const Options& opts, std::string_view sender,
                       std::string_view headers, std::string_view text,
                       std::string_view own_address) {
  std::string subject;
  std::string body(text);
  if (StartsWithIgnoreCase(body, "Subject:")) {
    size_t nl = body.find('\n');
    subject = std::string(Trim(std::string_view(body).substr(
        8, nl == std::string::npos ? std::string::npos : nl - 8)));
    body = nl == std::string::npos ? "" : body.substr(nl + 1);
    if (!body.empty() && body[0] == '\n') body.erase(0, 1);
  }
  if (subject.empty()) {
    std::string orig = Field(headers, "subject");
    subject = orig.empty() ? "Auto: away" : StrCat("Auto: ", orig);
  }
  std::string reply = StrCat("From: <", own_address, ">\nTo: <", sender,
                             ">\nSubject: ", subject,
                             "\nAuto-Submitted: auto-replied\n");
  std::string msgid = Field(headers, "message-id");
  if (!msgid.empty()) {
    std::string refs = Field(headers, "references");
    StrAppend(&reply, "In-Reply-To: ", msgid, "\nReferences: ",
              refs.empty() ? msgid : StrCat(refs, " ", msgid), "\n");
  }
  StrAppend(&reply, "\n", body);
  if (reply.back() != '\n') reply += '\n';
  return reply;
}

bool RecentlyAnswered(std::string_view db, std::string_view sender,
                      int64_t now, int64_t interval, std::string* updated) {
  std::string key = ToLower(sender);
  bool recent = false;
  updated->clear();
  for (std::string_view line : Split(db, '\n', true)) {
    auto w = SplitWhitespace(line);
    int64_t t = 0;
    if (w.size() != 2 || !ParseNumber(w[1], &t)) continue;
    if (now - t >= interval) continue;  // expired: forget it
    if (w[0] == key) {
      recent = true;
    }
    StrAppend(updated, line, "\n");
  }
  if (!recent) StrAppend(updated, key, " ", now, "\n");
  return recent;
}

int Main(int argc, char** argv) {
  Options opts;
  int c;
  while ((c = getopt(argc, argv, "r:m:d:a:")) != -1) {
    switch (c) {
      case 'r': {
        int64_t days = 0;
        if (!ParseNumber(std::string_view(optarg), &days) || days < 0) {
          std::cerr << "vacation: bad -r DAYS '" << optarg << "'\n";
          return kExitUsage;
        }
        opts.interval_sec = days * 86400;
        break;
      }
      case 'm':
        opts.message_file = optarg;
        break;
      case 'd':
        opts.db_file = optarg;
        break;
      case 'a':
        opts.aliases.push_back(optarg);
        break;
      default:
        std::cerr << "usage: vacation [-r DAYS] [-m MSGFILE] [-d DBFILE] "
                     "[-a ALIAS]... USER\n";
        return kExitUsage;
    }
  }
  if (optind + 1 != argc) {
    std::cerr << "usage: vacation [-r DAYS] [-m MSGFILE] [-d DBFILE] "
                 "[-a ALIAS]... USER\n";
    return kExitUsage;
  }
  opts.user = argv[optind];
  if (opts.message_file.empty()) {
    const char* home = getenv("HOME");
    opts.message_file = StrCat(home ? home : ".", "/.vacation.msg");
  }
  if (opts.db_file.empty()) opts.db_file = opts.message_file + ".db";

  // Read the message (bounded: only the header block matters).
  std::string in;
  char buf[65536];
  size_t n;
  while (in.size() < kMaxMessage &&
         (n = fread(buf, 1, sizeof buf, stdin)) > 0) {
    in.append(buf, n);
  }
  size_t end = in.find("\n\n");
  std::string headers = in.substr(0, end == std::string::npos ? in.size()
                                                               : end + 1);
  const char* env_sender = getenv("SENDER");
  std::string sender = env_sender ? env_sender : "";
  if (auto why = SkipReason(opts, sender, headers)) {
    std::cerr << "vacation: no reply: " << *why << "\n";
    return 0;
  }
  auto text = fs::ReadFile(opts.message_file, 64 * 1024);
  if (!text.ok()) {
    std::cerr << "vacation: " << Message(text.status()) << "\n";
    return 0;
  }
  auto db = fs::ReadFile(opts.db_file, 4 << 20);
  std::string updated;
  if (RecentlyAnswered(db.ok() ? *db : "", sender, time(nullptr),
                       opts.interval_sec, &updated)) {
    std::cerr << "vacation: no reply: answered " << sender
              << " recently\n";
    return 0;
  }
  std::string dir = opts.db_file.substr(0, opts.db_file.rfind('/') + 1);
  std::string base = opts.db_file.substr(dir.size());
  if (dir.empty()) dir = ".";
  (void)fs::WriteFileAtomically(dir, base, updated);

  const char* rcpt = getenv("RECIPIENT");
  std::string own = rcpt && *rcpt ? rcpt : opts.user;
  std::string reply = BuildReply(opts, sender, headers, *text, own);
  int fds[2];
  if (pipe(fds) != 0) return 0;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[0], 0);
    close(fds[0]);
    close(fds[1]);
    std::string sm = ProgramPath("sendmail");
    execl(sm.c_str(), "sendmail", "-f", "<>", "--", sender.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fds[0]);
  (void)fs::WriteAll(fds[1], reply, "sendmail");
  close(fds[1]);
  int status = 0;
  if (pid > 0) waitpid(pid, &status, 0);
  std::cerr << "vacation: replied to " << sender << "\n";
  return 0;
}

}  // namespace zm::vacation
