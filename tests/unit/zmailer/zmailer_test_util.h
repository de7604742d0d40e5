// Helpers for tests that run the real zmailer binary.
#ifndef ZM_TESTS_UNIT_ZMAILER_ZMAILER_TEST_UTIL_H_
#define ZM_TESTS_UNIT_ZMAILER_ZMAILER_TEST_UTIL_H_

#include <functional>
#include <string>
#include <vector>

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

// Calls `pred` until it is true or `timeout_ms` have passed.
bool WaitFor(const std::function<bool()>& pred, int timeout_ms);

// A TCP port on 127.0.0.1 that was free a moment ago.
int FreePort();

// The pid in a pid file, 0 if none.
int ReadPid(const std::string& path);
bool Alive(int pid);

}  // namespace zm::zmailer::ztest

#endif  // ZM_TESTS_UNIT_ZMAILER_ZMAILER_TEST_UTIL_H_
