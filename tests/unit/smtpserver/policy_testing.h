// A scratch node directory for the policy, checks and verify tests.
#ifndef ZM_TESTS_UNIT_SMTPSERVER_POLICY_TESTING_H_
#define ZM_TESTS_UNIT_SMTPSERVER_POLICY_TESTING_H_

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "node/common/node_dir.h"

namespace zm::smtpserver::testing {

class ScratchNode {
 public:
  ScratchNode() {
    char t[] = "/tmp/zm-policy-XXXXXX";
    path_ = ::mkdtemp(t);
    std::filesystem::create_directories(path_ + "/db");
    std::filesystem::create_directories(path_ + "/etc");
    std::filesystem::create_directories(path_ + "/mail");
  }
  ~ScratchNode() { std::filesystem::remove_all(path_); }
  void Write(const std::string& name, const std::string& text) {
    std::string p = path_ + "/" + name;
    std::filesystem::create_directories(std::filesystem::path(p).parent_path());
    std::ofstream(p) << text;
  }
  NodeDir node() const { return NodeDir{path_}; }

 private:
  std::string path_;
};

}  // namespace zm::smtpserver::testing

#endif  // ZM_TESTS_UNIT_SMTPSERVER_POLICY_TESTING_H_
