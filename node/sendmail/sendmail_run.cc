// sendmail's modes: submitting (the default) and handing over to the
// node's other programs.
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "node/common/fs.h"
#include "node/common/log.h"
#include "node/common/strings.h"
#include "node/sendmail/sendmail.h"
#include "node/sendmail/sendmail_internal.h"

namespace zm::sendmail {

void Say(int fd, std::string_view program, std::string_view text) {
  (void)fs::WriteAll(fd, StrCat(program, ": ", text, "\n"), "stderr");
}

int ExecProgram(const NodeDir& node, std::string_view name,
                const std::vector<std::string>& args, int err_fd) {
  std::string path = ProgramPath(name);
  // The program finds the same node through ZMAILER_HOME.
  ::setenv("ZMAILER_HOME", node.home.c_str(), 1);
  std::vector<std::string> storage;
  storage.emplace_back(name);
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : storage) argv.push_back(s.data());
  argv.push_back(nullptr);
  ::execv(path.c_str(), argv.data());
  Say(err_fd, "sendmail",
      StrCat("cannot run ", path, ": ", std::strerror(errno)));
  return EX_UNAVAILABLE;
}

namespace {

uint64_t FileSize(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

int SubmitMode(const Options& opts, const NodeDir& node, int in_fd,
               int err_fd) {
  if (!opts.request.extract_recipients && opts.request.recipients.empty()) {
    Say(err_fd, "sendmail", "no recipients given (name them, or use -t)");
    return EX_USAGE;
  }
  auto ctx = submit::LoadContext(node);
  if (!ctx.ok()) {
    Say(err_fd, "sendmail", Message(ctx.status()));
    return submit::SysexitFor(ctx.status());
  }
  Logger log("sendmail", node.maillog(), /*to_stderr=*/false);
  const uint64_t log_start = FileSize(node.maillog());
  auto done = submit::Submit(*ctx, opts.request, in_fd, log);
  if (!done.ok()) {
    int code = submit::SysexitFor(done.status());
    std::string text = Message(done.status());
    if (code == EX_TEMPFAIL) {
      text = StrCat("message not accepted, try again later: ", text);
    }
    Say(err_fd, "sendmail", text);
    return code;
  }
  if (opts.verbose) {
    Say(err_fd, "sendmail",
        StrCat(done->queue_id, ": queued for ", done->recipients.size(),
               " recipient(s); following log/maillog"));
    if (!FollowMessage(node.maillog(), log_start, done->queue_id,
                       opts.verbose_timeout_ms, err_fd)) {
      Say(err_fd, "sendmail",
          StrCat(done->queue_id,
                 ": still in the queue (no final status yet); see mailq"));
    }
  }
  return EX_OK;
}

}  // namespace

int Run(const Options& opts, int in_fd, int out_fd, int err_fd) {
  NodeDir node = LocateNode(opts.node_dir);
  switch (opts.mode) {
    case Mode::kPrintQueue:
      return ExecProgram(node, "mailq", opts.mailq_args, err_fd);
    case Mode::kNewAliases:
      return ExecProgram(node, "zmailer", {"newaliases"}, err_fd);
    case Mode::kRunQueue:
      return RunQueue(node, opts, out_fd, err_fd);
    case Mode::kVerify:
      return Verify(node, opts.request.recipients, out_fd, err_fd);
    case Mode::kSmtp:
      return SmtpSession(node, in_fd, out_fd, err_fd);
    case Mode::kSubmit:
      return SubmitMode(opts, node, in_fd, err_fd);
  }
  return EX_SOFTWARE;
}

}  // namespace zm::sendmail
