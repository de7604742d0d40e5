#include "node/common/node_dir.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "absl/status/status.h"
#include "node/common/fs.h"

#ifndef ZM_DEFAULT_HOME
#define ZM_DEFAULT_HOME "/var/lib/zmnode"
#endif

namespace zm {

NodeDir LocateNode(std::string_view explicit_dir) {
  std::string dir(explicit_dir);
  if (dir.empty()) {
    const char* env = std::getenv("ZMAILER_HOME");
    dir = (env != nullptr && *env != '\0') ? env : ZM_DEFAULT_HOME;
  }
  std::error_code ec;
  std::filesystem::path p = std::filesystem::absolute(dir, ec);
  std::string abs = ec ? dir : p.lexically_normal().string();
  while (abs.size() > 1 && abs.back() == '/') abs.pop_back();
  return NodeDir{abs};
}

absl::Status RequireNode(const NodeDir& node) {
  if (!fs::Exists(node.etc())) {
    return absl::NotFoundError(
        "no node at " + node.home +
        " (run 'zmailer init DIR', then set ZMAILER_HOME=DIR or pass -C DIR)");
  }
  return absl::OkStatus();
}

std::string SelfBinDir() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return ".";
  return exe.parent_path().string();
}

std::string ProgramPath(std::string_view name) {
  return SelfBinDir() + "/" + std::string(name);
}

}  // namespace zm
