// Helpers for the libFuzzer targets that read configuration files: a
// scratch node directory per process (under /tmp, removed at exit) and a
// way to put the input into one of its files, since the parsers under test
// read paths the way the programs do.
//
//   const zm::NodeDir& node = zm::fuzz::ScratchNode();
//   std::string path = zm::fuzz::WriteEtc("router.conf", input);
#ifndef ZM_TESTS_FUZZ_FUZZ_UTIL_H_
#define ZM_TESTS_FUZZ_FUZZ_UTIL_H_

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "node/common/node_dir.h"

namespace zm::fuzz {

// Stops the run (libFuzzer saves the input) when an invariant fails.
inline void Expect(bool ok) {
  if (!ok) std::abort();
}

inline const NodeDir& ScratchNode() {
  static const NodeDir* node = [] {
    std::string home =
        "/tmp/zm-fuzz-" + std::to_string(static_cast<long>(::getpid()));
    for (const char* sub : {"etc", "db", "spool", "log", "run", "mail"}) {
      std::filesystem::create_directories(home + "/" + sub);
    }
    static std::string remove = home;
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(remove, ec);
    });
    return new NodeDir{home};
  }();
  return *node;
}

// Replaces etc/<name> with `text`; returns its path.
inline std::string WriteEtc(std::string_view name, std::string_view text) {
  std::string path = ScratchNode().etc_file(name);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  return path;
}

// A parser's error must name its file ("file:line: what" or "file: what").
inline bool NamesFile(const absl::Status& status, std::string_view file) {
  std::string message(status.message().data(), status.message().size());
  return message.find(file) != std::string::npos;
}

}  // namespace zm::fuzz

#endif  // ZM_TESTS_FUZZ_FUZZ_UTIL_H_
