// The text formats relations are compiled from, and the stored form of
// alias values. I/O-free: callers pass file contents.
//
// Plain relations (routes, localnames, ...): one `key [value...]` per line,
// '#' comments; the value is the rest of the line, white space trimmed
// (localnames lines usually carry a key only).
//
// Aliases syntax (newdb option -a), as in sendmail/ZMailer:
//
//   postmaster: root
//   staff:      alice, bob@example.org,
//               "|/usr/bin/logger -t staff", /var/log/staff.mbox,
//               :include:/etc/zmnode/staff.list
//
// A line starting with white space continues the previous entry. Targets
// are separated by commas; each is an address, `\user` (local delivery
// without further aliasing), `|command`, `/file` (a path ending in '/' is
// a Maildir) or `:include:/absolute/path` (a list of targets read when
// the alias is used). A target may be double-quoted. Duplicate names and
// empty targets are errors ("file:line: what").
#ifndef ZM_RELATIONS_RELATION_SOURCE_H_
#define ZM_RELATIONS_RELATION_SOURCE_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace zm::relations {

// Longest source line accepted.
inline constexpr size_t kMaxSourceLine = 64 * 1024;

struct SourceEntry {
  std::string key;
  std::string value;  // plain: the rest of the line; aliases: targets
                      // joined with '\n' (see JoinTargets)
  int line = 0;
};

// `file` only names the source in errors.
absl::StatusOr<std::vector<SourceEntry>> ParsePlainSource(std::string_view text,
                                                          std::string_view file,
                                                          bool lowercase_keys);
absl::StatusOr<std::vector<SourceEntry>> ParseAliasesSource(
    std::string_view text, std::string_view file, bool lowercase_keys);

// Checks and normalises one alias target (quotes removed from "|cmd" and
// "/file" targets). InvalidArgument with the reason.
absl::StatusOr<std::string> NormalizeAliasTarget(std::string_view target);

// Splits one line of targets on commas outside double quotes; the pieces
// are trimmed but not checked. A trailing comma yields no empty piece.
std::vector<std::string> SplitTargetList(std::string_view list);

// The targets of an :include: file: comma- or newline-separated, '#'
// comments, each normalised. `file` names it in errors ("file:line: what").
absl::StatusOr<std::vector<std::string>> ParseIncludeFile(
    std::string_view text, std::string_view file);

// The stored value of an alias: its targets joined with '\n', and back.
std::string JoinTargets(const std::vector<std::string>& targets);
std::vector<std::string> SplitStoredTargets(std::string_view value);

}  // namespace zm::relations

#endif  // ZM_RELATIONS_RELATION_SOURCE_H_
