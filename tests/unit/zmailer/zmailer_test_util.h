// Helpers for tests that run the real zmailer binary.
#ifndef ZM_TESTS_UNIT_ZMAILER_ZMAILER_TEST_UTIL_H_
#define ZM_TESTS_UNIT_ZMAILER_ZMAILER_TEST_UTIL_H_

#include <functional>
#include <string>
#include <vector>

#include "tests/unit/testing/wait.h"

namespace zm::zmailer::ztest {

struct RunResult {
  int code = -1;  // exit status; 128+N if killed by signal N
  std::string out;
  std::string err;
};

// Runs argv[0] with the rest as arguments, stdin from /dev/null, and
// `env` ("NAME=value") added to this process's environment.
RunResult RunProgram(const std::vector<std::string>& argv,
                     const std::vector<std::string>& env = {});

// Starts argv without waiting; stdout and stderr go to `output_path`.
int Spawn(const std::vector<std::string>& argv, const std::string& output_path);

// A fresh directory under $TMPDIR (or /tmp).
std::string MakeTempDir();
void RemoveTree(const std::string& dir);

std::string ReadAll(const std::string& path);

using testutil::FreeLoopbackPort;
using testutil::WaitFor;

// The pid in a pid file, 0 if none.
int ReadPid(const std::string& path);
bool Alive(int pid);

}  // namespace zm::zmailer::ztest

#endif  // ZM_TESTS_UNIT_ZMAILER_ZMAILER_TEST_UTIL_H_
