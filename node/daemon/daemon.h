// zm::Daemon: the skeleton every long-running program of a node shares, so
// each main() holds only its own logic.
//
//   int main(int argc, char** argv) {
//     auto d = zm::Daemon::Init("router", argc, argv);
//     if (!d.ok()) return zm::Daemon::Fail("router", d.status());
//     ...load config (refuse to start on error)...
//     (*d)->Ready();                      // pid file: the supervisor and
//     while (...) {                       // tests wait for it
//       poll((*d)->signal_fd(), ...);
//       switch ((*d)->TakeSignal()) { ... }
//     }
//   }
//
// Common flags: `-C DIR` picks the node (else $ZMAILER_HOME), `-f` mirrors
// log lines to stderr (foreground). SIGTERM/SIGINT (stop), SIGHUP/SIGUSR1
// (reload) are blocked and delivered through a signalfd, so a poll loop or
// an asio descriptor sees them as readable input; Init() must run before
// any thread starts so that every thread inherits the mask. SIGPIPE is
// ignored. The ambient and inheritable capability sets are cleared (node/daemon/privileges.h):
// a capability the supervisor handed on stays with the program, not with
// what it runs.
#ifndef ZM_DAEMON_DAEMON_H_
#define ZM_DAEMON_DAEMON_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "node/common/fs.h"
#include "node/common/log.h"
#include "node/common/node_dir.h"

namespace zm {

class Daemon {
 public:
  enum class Signal { kNone, kStop, kReload };

  static absl::StatusOr<std::unique_ptr<Daemon>> Init(std::string program,
                                                      int argc, char** argv);
  // Prints "<program>: <message>" to stderr (the supervisor captures a
  // daemon's stderr into log/<program>.stderr) and returns the exit code for
  // a start-up failure.
  static int Fail(std::string_view program, const absl::Status& status);

  ~Daemon();

  const std::string& program() const { return program_; }
  const NodeDir& node() const { return node_; }
  Logger& log() { return *log_; }
  bool foreground() const { return foreground_; }
  // Arguments after the common flags, for the program's own parsing.
  const std::vector<std::string>& args() const { return args_; }

  int signal_fd() const { return signal_fd_.get(); }
  // Reads one pending signal from signal_fd (kNone if none is pending).
  Signal TakeSignal();

  // Writes run/<program>.pid: the program is up and serving.
  absl::Status Ready();

 private:
  Daemon() = default;
  std::string program_;
  NodeDir node_;
  bool foreground_ = false;
  std::vector<std::string> args_;
  std::unique_ptr<Logger> log_;
  fs::UniqueFd signal_fd_;
  bool wrote_pid_ = false;
};

}  // namespace zm

#endif  // ZM_DAEMON_DAEMON_H_
