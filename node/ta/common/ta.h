// zm::ta: the agent side of the scheduler <-> transport agent protocol
// (docs/ta-protocol.md), shared by every transport agent.
//
// An agent is a Handler that delivers one recipient at a time; RunAgent()
// does everything else: it says `#hungry`, reads jobs from the scheduler,
// loads the control file (spool/transport/<id>) and the message file
// (spool/queue/<id>) once per job, calls the handler for each recipient,
// appends final results (`d` lines) to the control file *before* reporting
// them, and reports one result line per recipient.
//
//   class MyAgent : public zm::ta::Handler {
//     zm::ta::Result Deliver(const zm::ta::Delivery& d) override {
//       ... write d.message somewhere ...
//       return zm::ta::Result::Ok("2.0.0", "local", "delivered");
//     }
//   };
//   MyAgent agent;
//   absl::Status s = zm::ta::RunAgent(node, agent, log, 0, 1);
//
// Problems with one message (unknown queue id, missing or damaged files, an
// index the control file does not have) become `deferred` results with a
// diagnostic; only a broken conversation (an over-long or malformed job
// line, a closed result pipe) ends RunAgent() with an error.
//
// Thread-compatible: one RunAgent() per process (agents are
// single-threaded programs).
#ifndef ZM_TA_COMMON_TA_H_
#define ZM_TA_COMMON_TA_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "node/common/log.h"
#include "node/common/node_dir.h"
#include "node/mail/control.h"

namespace zm::ta {

// Bound of a protocol line in either direction (docs/ta-protocol.md).
inline constexpr size_t kMaxLine = 8192;
// Bound of a diagnostic text on a result line.
inline constexpr size_t kMaxDiag = 1000;

// What happened to one recipient.
struct Result {
  enum class Status { kOk, kError, kDeferred, kRetryAt };
  Status status = Status::kDeferred;
  std::string dsn;       // enhanced status code, "2.0.0"
  std::string relay;     // "local", "pipe", "file", "none", "host[ip]:port"
  std::string diag;      // one line; cleaned by the loop
  int64_t retry_at = 0;  // unix seconds, for kRetryAt
  double connect_s = 0;  // set-up time; the loop measures the rest
  double xfer_s = -1;    // transfer time if the handler measured it (>= 0)
  // kDeferred because the destination itself could not be reached (no
  // server answered, DNS failed): reported as `unreachable`, and the
  // scheduler holds the rest of the thread back until the retry time.
  bool unreachable = false;

  static Result Ok(std::string dsn, std::string relay, std::string diag) {
    return {Status::kOk, std::move(dsn), std::move(relay), std::move(diag)};
  }
  static Result Error(std::string dsn, std::string relay, std::string diag) {
    return {Status::kError, std::move(dsn), std::move(relay), std::move(diag)};
  }
  static Result Deferred(std::string dsn, std::string relay, std::string diag) {
    return {Status::kDeferred, std::move(dsn), std::move(relay),
            std::move(diag)};
  }
};

// Everything a handler needs to deliver one recipient. The views stay valid
// for the duration of the Deliver() call only.
struct Delivery {
  const std::string& queue_id;
  const std::string& host;  // the job's host (decoded)
  const mail::ControlFile& control;
  const mail::ControlRecipient& recipient;
  std::string_view message;  // the RFC 5322 message (LF line endings)
};

class Handler {
 public:
  virtual ~Handler() = default;
  // Delivers one recipient. Must not throw; must return a result.
  virtual Result Deliver(const Delivery& d) = 0;

  // Delivers every recipient of one job that still needs delivery, at once
  // (the smtp agent sends them in one transaction). Returns one Result per
  // element of `rcpts`, in the same order; a missing one is deferred. The
  // default calls Deliver() for each and measures each one's xfer_s.
  virtual std::vector<Result> DeliverJob(
      const std::string& queue_id, const std::string& host,
      const mail::ControlFile& control,
      const std::vector<const mail::ControlRecipient*>& rcpts,
      std::string_view message);
};

// Runs the conversation over `in_fd` (jobs) and `out_fd` (results) until
// the scheduler closes `in_fd`. OK on a clean end of input; an error (the
// caller exits non-zero) on a protocol violation or a failed write.
absl::Status RunAgent(const NodeDir& node, Handler& handler, Logger& log,
                      int in_fd, int out_fd);

// The common start of an agent's main(): takes `-C DIR` out of the
// arguments (else the node is $ZMAILER_HOME), checks that a node is there,
// ignores SIGPIPE and SIGXFSZ (a closed pipe or a file-size limit must be
// an error return, not a silent death). `args` are the remaining arguments.
struct AgentStart {
  NodeDir node;
  std::vector<std::string> args;
};
absl::StatusOr<AgentStart> StartAgent(int argc, char** argv);

// Runs a whole agent: StartAgent(), `make_handler(start, log)` (which may
// refuse with a status: printed as "<program>: <reason>", exit 64 for bad
// arguments (InvalidArgument), 1 otherwise), then RunAgent() on stdin and
// stdout. Returns the process exit code: 0 at the end of input, 76
// (EX_PROTOCOL) after a protocol error.
int AgentMain(std::string_view program, int argc, char** argv,
              const std::function<absl::StatusOr<std::unique_ptr<Handler>>(
                  const AgentStart&, Logger&)>& make_handler);

// --- Pieces of the loop, public for tests and for other agents. ---

// One job line: `queue-id TAB host(xtext) TAB idx[,idx...]`.
struct Job {
  std::string queue_id;
  std::string host;
  std::vector<int> indexes;
};
absl::StatusOr<Job> ParseJob(std::string_view line);

// The result line for the scheduler, ending in '\n'.
std::string FormatResult(std::string_view queue_id, int index, const Result& r,
                         double xfer_s);

// Makes `text` fit on a result line: control characters (TAB, CR, LF...)
// become spaces, runs of spaces shrink, length is capped at kMaxDiag.
std::string CleanDiag(std::string_view text);

// Appends `line` to the control file at `path` with one O_APPEND write.
// If the file does not end in '\n' (a torn append of a crashed agent), a
// '\n' is written first so this line stays whole. A short write is cut
// back off again.
absl::Status AppendResult(const std::string& path, std::string_view line);

// A read-only view of a whole file, mapped into memory.
class MappedFile {
 public:
  static absl::StatusOr<MappedFile> Open(const std::string& path);
  MappedFile() = default;
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  std::string_view data() const {
    return {static_cast<const char*>(addr_), size_};
  }

 private:
  void* addr_ = nullptr;
  size_t size_ = 0;
};

}  // namespace zm::ta

#endif  // ZM_TA_COMMON_TA_H_
