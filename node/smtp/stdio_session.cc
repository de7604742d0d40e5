#include "node/smtp/stdio_session.h"

#include <sys/time.h>
#include <sysexits.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/config/cluster_conf.h"
#include "node/smtp/basic_checks.h"
#include "node/smtp/session.h"
#include "node/smtpserver/smtpserver_settings.h"
#include "node/spool/spool.h"

namespace zm::smtp {
namespace {

int64_t NowUsec() {
  struct timeval tv;
  ::gettimeofday(&tv, nullptr);
  return int64_t{tv.tv_sec} * 1000000 + tv.tv_usec;
}

}  // namespace

int RunStdioSession(const NodeDir& node, Logger& log,
                    std::string_view local_user, int in_fd, int out_fd) {
  auto settings = smtpserver::LoadSettings(node);
  absl::StatusOr<std::string> tag =
      settings.ok() ? config::LoadNodeTag(node) : settings.status();
  if (!tag.ok()) {
    log.Error("", StrCat("sendmail -bs: ", Message(tag.status())));
    (void)fs::WriteAll(out_fd, "421 4.3.0 Local configuration error\r\n",
                       "stdout");
    return EX_CONFIG;
  }
  spool::Spool spool(node.spool(), *tag);
  SessionConfig config = (*settings)->session;
  config.strict_dot = false;      // a terminal or pipe sends bare LF
  config.require_domain = false;  // local users may name local users
  config.style_flags = "";        // sloppy syntax is fine locally
  ClientInfo client;
  client.trusted = true;
  client.local_user = std::string(local_user);
  client.listener = Listener::kLocal;
  Session session(config, client);
  session.SetGreeting((*settings)->GreetingText(NowUsec() / 1000000));
  BasicChecks checks((*settings)->domains);

  std::unique_ptr<spool::Submission> sub;
  char buf[64 * 1024];
  auto flush = [&]() {
    std::string out = session.TakeOutput();
    return out.empty() || fs::WriteAll(out_fd, out, "stdout").ok();
  };
  for (;;) {
    switch (session.Step()) {
      case Action::kNeedInput: {
        if (!flush()) return EX_IOERR;
        ssize_t n = ::read(in_fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) break;
        if (n < 0) return EX_IOERR;
        if (n == 0) {
          session.InputEof();
        } else {
          session.Input(std::string_view(buf, static_cast<size_t>(n)));
        }
        break;
      }
      case Action::kFlush:
        if (!flush()) return EX_IOERR;
        break;
      case Action::kCheck:  // BasicChecks needs no staged message
        session.CheckDone(checks.Decide(session, session.pending_check()));
        break;
      case Action::kStartTls:  // never offered on a pipe
        session.TlsFailed();
        break;
      case Action::kBeginMessage: {
        int64_t now = NowUsec();
        mail::Envelope env = session.envelope();
        env.arrival_usec = now;
        auto s = spool.Begin(env);
        if (s.ok()) {
          sub = std::move(*s);
          session.MessageBegun(absl::OkStatus(), sub->queue_id(), now);
        } else {
          log.Warning("",
                      StrCat("cannot start a message: ", Message(s.status())));
          session.MessageBegun(s.status(), "", now);
        }
        break;
      }
      case Action::kAppend:
        if (auto s = sub->Append(session.TakeData()); !s.ok()) {
          log.Warning(sub->queue_id(),
                      StrCat("spool write failed: ", Message(s)));
          session.AppendFailed(s);
        }
        break;
      case Action::kCommit: {
        absl::Status s = sub->Append(session.TakeData());
        if (s.ok()) s = sub->Commit();
        if (s.ok()) {
          log.Info(sub->queue_id(), StrCat("uid=", ::getuid(), " from=<",
                                           session.envelope().sender, ">"));
        } else {
          log.Warning(sub->queue_id(),
                      StrCat("spool commit failed: ", Message(s)));
        }
        session.MessageCommitted(s);
        sub.reset();
        break;
      }
      case Action::kAbortMessage:
        sub.reset();
        break;
      case Action::kClose:
        sub.reset();
        return flush() ? EX_OK : EX_IOERR;
    }
  }
}

}  // namespace zm::smtp
