// zm::NodeDir: where a node lives, and where its programs are.
//
// A node is one directory (ZMAILER_HOME) holding etc/ (configuration),
// db/ (compiled relations), spool/ (the POSTOFFICE), log/, run/ (pid files,
// sockets, the freeze marker) and mail/ (the local mail store). Every
// command finds its node the same way: an explicit directory (`-C DIR`),
// else $ZMAILER_HOME, else the build's default.
//
// The node's programs live together in one bin/ folder; ProgramPath()
// finds a sibling beside the running executable, so a build tree and an
// installed tree both work.
#ifndef ZM_COMMON_NODE_DIR_H_
#define ZM_COMMON_NODE_DIR_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace zm {

struct NodeDir {
  std::string home;  // absolute, no trailing slash

  std::string etc() const { return home + "/etc"; }
  std::string db() const { return home + "/db"; }
  std::string spool() const { return home + "/spool"; }  // POSTOFFICE
  std::string log() const { return home + "/log"; }
  std::string run() const { return home + "/run"; }
  std::string mail() const { return home + "/mail"; }
  std::string etc_file(std::string_view name) const {
    return etc() + "/" + std::string(name);
  }
  // The event log every program appends to.
  std::string maillog() const { return log() + "/maillog"; }
  std::string pid_file(std::string_view program) const {
    return run() + "/" + std::string(program) + ".pid";
  }
  std::string freeze_marker() const { return run() + "/frozen"; }
};

// Picks the node directory: `explicit_dir` if non-empty, else
// $ZMAILER_HOME, else the compiled-in default. The path is made absolute.
// Does not check that a node exists there; see RequireNode().
NodeDir LocateNode(std::string_view explicit_dir);

// NotFound with a one-line reason if `node` has no etc/ folder (no
// `zmailer init` was run there).
absl::Status RequireNode(const NodeDir& node);

// Absolute path of the folder holding the running executable.
std::string SelfBinDir();

// Absolute path of a sibling program `name` beside the running executable.
std::string ProgramPath(std::string_view name);

}  // namespace zm

#endif  // ZM_COMMON_NODE_DIR_H_
