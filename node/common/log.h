// zm::Logger: one line per event, shared by every program of a node.
//
// Lines look like syslog's, so the log analysers operators already run
// (pflogsumm --syslog-name=zmnode, grep) read them unchanged:
//
//   Nov 20 23:05:19 mx1 zmnode/router[4711]: 0G4VZ8Q3K2M7AB-mx1: from=<a@b>,
//   nrcpt=2
//
// Every line is formatted into one buffer and written with a single
// write(2) to a file opened with O_APPEND, so lines from concurrent
// processes and threads never interleave. A Logger is thread-safe; it is
// created by each program's main and passed by reference (no global).
#ifndef ZM_COMMON_LOG_H_
#define ZM_COMMON_LOG_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace zm {

enum class LogLevel { kInfo, kWarning, kError };

class Logger {
 public:
  // `program` is the short name ("smtpserver"); `path` the log file ("" for
  // none); `to_stderr` mirrors each line to stderr (foreground runs).
  Logger(std::string program, std::string path, bool to_stderr);
  ~Logger();
  Logger(const Logger&) = delete;
  Logger& operator=(const Logger&) = delete;

  // `queue_id` may be empty for events that belong to no message.
  void Log(LogLevel level, std::string_view queue_id, std::string_view text);
  void Info(std::string_view queue_id, std::string_view text) {
    Log(LogLevel::kInfo, queue_id, text);
  }
  void Warning(std::string_view queue_id, std::string_view text) {
    Log(LogLevel::kWarning, queue_id, text);
  }
  void Error(std::string_view queue_id, std::string_view text) {
    Log(LogLevel::kError, queue_id, text);
  }

  // Reopens the file (after rotation). Safe while other threads log.
  absl::Status Reopen();

  const std::string& program() const { return program_; }

 private:
  const std::string program_;
  const std::string path_;
  const bool to_stderr_;
  std::string hostname_;
  absl::Mutex mu_;
  int fd_ ABSL_GUARDED_BY(mu_) = -1;
};

}  // namespace zm

#endif  // ZM_COMMON_LOG_H_
