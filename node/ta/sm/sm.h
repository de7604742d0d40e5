// sm: runs sendmail-style mailer programs ("M lines") listed in sm.conf
// (docs/transport-agents.md).
//
//   sm [-C DIR] [-c CHANNEL] [-f CONFFILE] [-t SECS] [ENTRY]
//
// etc/sm.conf, one mailer per line:
//   NAME  FLAGS  /path/to/program  argv0 arg...
// Arguments may use $u (recipient), $h (the job's host), $f and $g (the
// envelope sender, empty for <>), $$ (a dollar). FLAGS is "-" or letters:
//   f  add "-f sender" after argv0      r  add "-r sender" after argv0
//   m  one run for all recipients of a job ($u: one word per recipient)
//   n  no "From sender date" line in front of the message
//   E  ">From " escape lines starting with "From "
//   P  a Return-Path: header in front of the message
//   7  clear the eighth bit of every byte
// The program runs without a shell, the message on its standard input,
// standard output and error captured (bounded) as the diagnostic. Exit 0
// is delivered, EX_TEMPFAIL (75) or a signal or the time limit is
// deferred, anything else failed.
#ifndef ZM_TA_SM_SM_H_
#define ZM_TA_SM_SM_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "node/common/log.h"
#include "node/ta/common/ta.h"

namespace zm::sm {

struct Mailer {
  std::string name;
  std::string flags;
  std::string program;
  std::vector<std::string> argv;
  bool Has(char f) const { return flags.find(f) != std::string::npos; }
};

// InvalidArgument "file:line: what" for a bad line.
absl::StatusOr<std::vector<Mailer>> ParseSmConf(std::string_view text,
                                                std::string_view file);

// argv with $u/$h/$f/$g/$$ replaced; with flag m, a word that is exactly
// "$u" becomes one word per recipient.
std::vector<std::string> ExpandArgv(const Mailer& m,
                                    const std::vector<std::string>& users,
                                    std::string_view host,
                                    std::string_view sender);

struct RunResult {
  bool timed_out = false;
  bool signaled = false;
  int code = 0;        // exit status or signal number
  std::string output;  // first bytes of stdout + stderr
};
// Runs `program` with `argv`, `input` on stdin, within `timeout_s`.
absl::StatusOr<RunResult> RunProgram(const std::string& program,
                                     const std::vector<std::string>& argv,
                                     std::string_view input, int timeout_s);

class SmAgent : public ta::Handler {
 public:
  SmAgent(Mailer mailer, int timeout_s, Logger& log)
      : m_(std::move(mailer)), timeout_s_(timeout_s), log_(log) {}
  ta::Result Deliver(const ta::Delivery& d) override;
  std::vector<ta::Result> DeliverJob(
      const std::string& queue_id, const std::string& host,
      const mail::ControlFile& control,
      const std::vector<const mail::ControlRecipient*>& rcpts,
      std::string_view message) override;

 private:
  ta::Result Run(const std::string& queue_id, const std::string& host,
                 const mail::ControlFile& control,
                 const std::vector<std::string>& users,
                 std::string_view message);
  Mailer m_;
  int timeout_s_;
  Logger& log_;
};

absl::StatusOr<std::unique_ptr<ta::Handler>> MakeAgent(
    const ta::AgentStart& start, Logger& log);

}  // namespace zm::sm

#endif  // ZM_TA_SM_SM_H_
