// Reading ZMailer-style configuration files: lines with their numbers,
// errors as "file:line: what", and the variables config values may use.
//
// Every parser of a node's configuration (smtpserver.conf, scheduler.conf,
// dbases.conf, aliases, ...) is built on these, so every error an operator
// sees has the same shape and every program refuses to start on one.
//
//   auto lines = zm::config::ReadLines(path);   // comments kept out
//   for (const auto& l : *lines) {
//     if (bad) return zm::config::Error(path, l.number, "unknown key 'x'");
//   }
#ifndef ZM_CONFIG_CONFIG_FILE_H_
#define ZM_CONFIG_CONFIG_FILE_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "node/common/node_dir.h"

namespace zm::config {

// InvalidArgument "file:line: what".
absl::Status Error(std::string_view file, int line, std::string_view what);

struct Line {
  int number = 0;    // 1-based
  std::string text;  // without the newline and without a trailing '\r'
};

// All lines of a file, numbered, with nothing removed. NotFound (naming
// the file) if it does not exist.
absl::StatusOr<std::vector<Line>> ReadAllLines(const std::string& path);

// Lines without '#' comments (from an unquoted '#' to the end of line),
// trailing white space removed, and empty lines dropped. Leading white
// space is kept: it means "continuation" in several formats.
absl::StatusOr<std::vector<Line>> ReadLines(const std::string& path);

// Removes an unquoted '#' comment and trailing white space from one line.
std::string StripComment(std::string_view text);

// Expands $NAME and ${NAME} in a value: MAILHOME (the node directory),
// MAILVAR (its etc/), MAILSHARE (etc/ too), POSTOFFICE (spool/), LOGDIR,
// DBDIR (db/), MAILBOX (mail/), MAILBIN (the programs' folder) and DBTYPE
// ("rocksdb"), then the process environment. InvalidArgument naming the
// variable if it is unknown.
absl::StatusOr<std::string> ExpandVariables(std::string_view value,
                                            const NodeDir& node);

}  // namespace zm::config

#endif  // ZM_CONFIG_CONFIG_FILE_H_
