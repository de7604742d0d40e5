// sm: sm.conf, running a mailer program, and mapping its exit code.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/ta/mailbox/mailbox.h"
#include "node/ta/sm/sm.h"

namespace zm::sm {
namespace {

constexpr size_t kMaxOutput = 2000;
constexpr size_t kMaxConf = 1 << 20;
constexpr std::string_view kFlags = "-frmnEP7";

struct ExitMap {
  int code;
  const char* name;
  const char* dsn;
};
constexpr ExitMap kExits[] = {
    {64, "EX_USAGE", "5.3.0"},    {65, "EX_DATAERR", "5.6.0"},
    {66, "EX_NOINPUT", "5.3.0"},  {67, "EX_NOUSER", "5.1.1"},
    {68, "EX_NOHOST", "5.1.2"},   {69, "EX_UNAVAILABLE", "5.3.0"},
    {70, "EX_SOFTWARE", "5.3.0"}, {71, "EX_OSERR", "5.3.0"},
    {72, "EX_OSFILE", "5.3.0"},   {73, "EX_CANTCREAT", "5.2.0"},
    {74, "EX_IOERR", "5.3.0"},    {75, "EX_TEMPFAIL", "4.0.0"},
    {76, "EX_PROTOCOL", "5.5.0"}, {77, "EX_NOPERM", "5.7.1"},
    {78, "EX_CONFIG", "5.3.5"},
};

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

absl::StatusOr<std::vector<Mailer>> ParseSmConf(std::string_view text,
                                                std::string_view file) {
  std::vector<Mailer> out;
  int lineno = 0;
  for (std::string_view line : Split(text, '\n')) {
    ++lineno;
    std::string_view t = Trim(line);
    if (t.empty() || t[0] == '#') continue;
    std::vector<std::string_view> w = SplitWhitespace(t);
    auto bad = [&](std::string_view what) {
      return absl::InvalidArgumentError(StrCat(file, ":", lineno, ": ", what));
    };
    if (w.size() < 4) return bad("needs NAME FLAGS PROGRAM ARGV0 [ARGS]");
    Mailer m;
    m.name = std::string(w[0]);
    m.flags = std::string(w[1]);
    for (char c : m.flags) {
      if (kFlags.find(c) == std::string_view::npos) {
        return bad(StrCat("unknown flag '", std::string(1, c),
                          "' (known: frmnEP7, or -)"));
      }
    }
    if (w[2].empty() || w[2][0] != '/') {
      return bad("the program needs an absolute path");
    }
    m.program = std::string(w[2]);
    for (size_t i = 3; i < w.size(); ++i) m.argv.emplace_back(w[i]);
    for (const auto& prev : out) {
      if (prev.name == m.name) return bad(StrCat("mailer ", m.name, " twice"));
    }
    out.push_back(std::move(m));
  }
  return out;
}

std::vector<std::string> ExpandArgv(const Mailer& m,
                                    const std::vector<std::string>& users,
                                    std::string_view host,
                                    std::string_view sender) {
  std::vector<std::string> out;
  auto expand = [&](std::string_view word, std::string_view user) {
    std::string r;
    for (size_t i = 0; i < word.size(); ++i) {
      if (word[i] != '$' || i + 1 == word.size()) {
        r += word[i];
        continue;
      }
      char c = word[++i];
      switch (c) {
        case 'u':
          r.append(user);
          break;
        case 'h':
          r.append(host);
          break;
        case 'f':
        case 'g':
          r.append(sender);
          break;
        case '$':
          r += '$';
          break;
        default:
          r += '$';
          r += c;
      }
    }
    return r;
  };
  for (size_t i = 0; i < m.argv.size(); ++i) {
    const std::string& word = m.argv[i];
    if (word == "$u" && m.Has('m')) {
      for (const auto& u : users) out.push_back(u);
    } else {
      out.push_back(expand(word, users.empty() ? "" : users[0]));
    }
    if (i == 0) {
      if (m.Has('f')) {
        out.push_back("-f");
        out.emplace_back(sender);
      }
      if (m.Has('r')) {
        out.push_back("-r");
        out.emplace_back(sender);
      }
    }
  }
  return out;
}

absl::StatusOr<RunResult> RunProgram(const std::string& program,
                                     const std::vector<std::string>& argv,
                                     std::string_view input, int timeout_s) {
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0) return fs::ErrnoStatus("pipe", "", errno);
  if (::pipe2(out, O_CLOEXEC) != 0) {
    ::close(in[0]);
    ::close(in[1]);
    return fs::ErrnoStatus("pipe", "", errno);
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) {
    int e = errno;
    for (int fd : {in[0], in[1], out[0], out[1]}) ::close(fd);
    return fs::ErrnoStatus("fork", program, e);
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    ::signal(SIGPIPE, SIG_DFL);
    ::signal(SIGXFSZ, SIG_DFL);
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::dup2(out[1], 2);
    if (::chdir("/") != 0) ::_exit(71);
    ::execv(program.c_str(), args.data());
    const char* msg = "sm: cannot execute the mailer program\n";
    (void)!::write(2, msg, std::strlen(msg));
    ::_exit(71);  // EX_OSERR
  }
  ::setpgid(pid, pid);
  ::close(in[0]);
  ::close(out[1]);
  ::fcntl(in[1], F_SETFL, O_NONBLOCK);
  ::fcntl(out[0], F_SETFL, O_NONBLOCK);
  RunResult r;
  int64_t deadline = NowMs() + int64_t{timeout_s} * 1000;
  int wfd = in[1];
  if (input.empty()) {
    ::close(wfd);
    wfd = -1;
  }
  int rfd = out[0];
  while (rfd >= 0) {
    int64_t left = deadline - NowMs();
    if (left <= 0) {
      r.timed_out = true;
      break;
    }
    pollfd p[2];
    int n = 0;
    p[n++] = {rfd, POLLIN, 0};
    if (wfd >= 0) p[n++] = {wfd, POLLOUT, 0};
    int rc = ::poll(p, n, static_cast<int>(std::min<int64_t>(left, 1000)));
    if (rc < 0 && errno != EINTR) break;
    if (rc <= 0) continue;
    if (p[0].revents != 0) {
      char buf[4096];
      ssize_t got = ::read(rfd, buf, sizeof buf);
      if (got > 0) {
        size_t keep =
            std::min(static_cast<size_t>(got),
                     kMaxOutput - std::min(kMaxOutput, r.output.size()));
        r.output.append(buf, keep);
      } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
        ::close(rfd);
        rfd = -1;
      }
    }
    if (wfd >= 0 && n > 1 && p[1].revents != 0) {
      ssize_t put =
          ::write(wfd, input.data(), std::min<size_t>(input.size(), 65536));
      if (put > 0) {
        input.remove_prefix(static_cast<size_t>(put));
      }
      if ((put < 0 && errno != EAGAIN && errno != EINTR) || input.empty()) {
        // Done, or the program stopped reading (EPIPE): its exit code tells.
        ::close(wfd);
        wfd = -1;
      }
    }
  }
  if (wfd >= 0) ::close(wfd);
  if (rfd >= 0) ::close(rfd);
  if (r.timed_out) ::kill(-pid, SIGKILL);
  int status = 0;
  // The output pipe is closed: the program is gone or about to be; a
  // program that closed its output and lingers is ended at the deadline.
  for (;;) {
    pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR)
      return fs::ErrnoStatus("waitpid", program, errno);
    if (NowMs() > deadline && !r.timed_out) {
      r.timed_out = true;
      ::kill(-pid, SIGKILL);
    }
    pollfd none{-1, 0, 0};
    ::poll(&none, 0, 20);
  }
  if (WIFSIGNALED(status)) {
    r.signaled = true;
    r.code = WTERMSIG(status);
  } else {
    r.code = WEXITSTATUS(status);
  }
  return r;
}

ta::Result SmAgent::Deliver(const ta::Delivery& d) {
  return Run(d.queue_id, d.host, d.control, {d.recipient.user}, d.message);
}

std::vector<ta::Result> SmAgent::DeliverJob(
    const std::string& queue_id, const std::string& host,
    const mail::ControlFile& control,
    const std::vector<const mail::ControlRecipient*>& rcpts,
    std::string_view message) {
  if (!m_.Has('m')) {
    return Handler::DeliverJob(queue_id, host, control, rcpts, message);
  }
  std::vector<std::string> users;
  for (const auto* r : rcpts) users.push_back(r->user);
  return std::vector<ta::Result>(rcpts.size(),
                                 Run(queue_id, host, control, users, message));
}

ta::Result SmAgent::Run(const std::string& queue_id, const std::string& host,
                        const mail::ControlFile& control,
                        const std::vector<std::string>& users,
                        std::string_view message) {
  std::string input;
  if (!m_.Has('n')) {
    input += mailbox::FromLine(control.sender, std::time(nullptr));
    if (input.empty() || input.back() != '\n') input += '\n';
  }
  if (m_.Has('P')) StrAppend(&input, "Return-Path: <", control.sender, ">\n");
  bool start = true;
  for (size_t i = 0; i < message.size(); ++i) {
    char c = message[i];
    if (start && m_.Has('E') && message.compare(i, 5, "From ") == 0) {
      input += '>';
    }
    if (m_.Has('7')) c = static_cast<char>(c & 0x7f);
    input += c;
    start = c == '\n';
  }
  std::vector<std::string> argv = ExpandArgv(m_, users, host, control.sender);
  std::string relay = StrCat("sm:", m_.name);
  auto rr = RunProgram(m_.program, argv, input, timeout_s_);
  if (!rr.ok()) {
    log_.Warning(queue_id,
                 StrCat("mailer ", m_.name, ": ", Message(rr.status())));
    return ta::Result::Deferred("4.3.0", relay,
                                StrCat("sm; ", Message(rr.status())));
  }
  std::string out = ta::CleanDiag(rr->output);
  std::string tail = out.empty() ? "" : StrCat(": ", out);
  if (rr->timed_out) {
    return ta::Result::Deferred("4.4.7", relay,
                                StrCat("sm; ", m_.program, " ran longer than ",
                                       timeout_s_, " s and was killed", tail));
  }
  if (rr->signaled) {
    return ta::Result::Deferred(
        "4.3.0", relay,
        StrCat("sm; ", m_.program, " died of signal ", rr->code, tail));
  }
  if (rr->code == 0) {
    return ta::Result::Ok("2.0.0", relay,
                          StrCat("sm; delivered by ", m_.program, tail));
  }
  const char* name = "exit";
  std::string dsn = "5.3.0";
  for (const auto& e : kExits) {
    if (e.code == rr->code) {
      name = e.name;
      dsn = e.dsn;
    }
  }
  std::string diag = StrCat("sm; ", m_.program, " exited with ", rr->code, " (",
                            name, ")", tail);
  if (rr->code == 75) return ta::Result::Deferred(dsn, relay, diag);
  return ta::Result::Error(dsn, relay, diag);
}

absl::StatusOr<std::unique_ptr<ta::Handler>> MakeAgent(
    const ta::AgentStart& start, Logger& log) {
  std::string conf = start.node.etc_file("sm.conf");
  std::string channel, entry;
  int timeout_s = 600;
  const auto& args = start.args;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](std::string* v) {
      if (i + 1 >= args.size() || args[i + 1].empty()) return false;
      *v = args[++i];
      return true;
    };
    std::string v;
    if (a == "-c") {
      if (!value(&channel))
        return absl::InvalidArgumentError("-c needs a channel");
    } else if (a == "-f") {
      if (!value(&conf)) return absl::InvalidArgumentError("-f needs a file");
    } else if (a == "-t") {
      if (!value(&v) || !ParseNumber(v, &timeout_s) || timeout_s < 1 ||
          timeout_s > 86400) {
        return absl::InvalidArgumentError("-t needs seconds (1..86400)");
      }
    } else if (a == "-8" || a == "-H" || a == "-Q") {
      // ZMailer compatibility; nothing to do.
    } else if (!a.empty() && a[0] == '-') {
      return absl::InvalidArgumentError(StrCat("unknown flag '", a, "'"));
    } else if (entry.empty()) {
      entry = a;
    } else {
      return absl::InvalidArgumentError("one mailer entry only");
    }
  }
  if (entry.empty()) entry = channel;
  if (entry.empty()) {
    return absl::InvalidArgumentError(
        "which sm.conf entry? (sm [-c CHANNEL] ENTRY)");
  }
  auto text = fs::ReadFile(conf, kMaxConf);
  if (!text.ok()) return text.status();
  auto mailers = ParseSmConf(*text, conf);
  if (!mailers.ok()) return mailers.status();
  for (auto& m : *mailers) {
    if (m.name == entry) {
      return std::make_unique<SmAgent>(std::move(m), timeout_s, log);
    }
  }
  return absl::NotFoundError(StrCat(conf, ": no mailer named ", entry));
}

}  // namespace zm::sm
