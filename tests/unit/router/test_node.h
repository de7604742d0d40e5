// A throw-away node directory for relations/router tests: etc/ from the
// shipped templates (node/config/defaults), placeholders filled in.
#ifndef ZM_TESTS_UNIT_ROUTER_TEST_NODE_H_
#define ZM_TESTS_UNIT_ROUTER_TEST_NODE_H_

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "node/common/node_dir.h"

namespace zm::test {

class TestNode {
 public:
  TestNode() {
    char tmpl[] = "/tmp/zm-router-test-XXXXXX";
    node_.home = ::mkdtemp(tmpl);
    for (auto d : {"etc", "db", "spool", "log", "run", "mail"}) {
      std::filesystem::create_directories(node_.home + "/" + d);
    }
    for (auto f :
         {"dbases.conf", "aliases", "localnames", "routes", "fqdnaliases",
          "userdb", "router.conf"}) {
      Write("etc/" + std::string(f), Template(f));
    }
    Write("etc/mail.conf", "hostname=mx1.example.net\nmydomain=example.net\n");
    Write("etc/cluster.conf", "node-id t1\n");
  }
  ~TestNode() { std::filesystem::remove_all(node_.home); }

  const NodeDir& node() const { return node_; }
  std::string Path(const std::string& rel) const {
    return node_.home + "/" + rel;
  }

  void Write(const std::string& rel, const std::string& text) const {
    std::filesystem::create_directories(
        std::filesystem::path(Path(rel)).parent_path());
    std::ofstream(Path(rel), std::ios::trunc) << text;
  }
  void Append(const std::string& rel, const std::string& text) const {
    std::ofstream(Path(rel), std::ios::app) << text;
  }
  static std::string Read(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  static std::string Template(const std::string& name) {
    std::string t = Read(std::string(ZM_DEFAULTS_DIR) + "/" + name);
    for (size_t p; (p = t.find("@HOSTNAME@")) != std::string::npos;) {
      t.replace(p, 10, "mx1.example.net");
    }
    return t;
  }

 private:
  NodeDir node_;
};

}  // namespace zm::test

#endif  // ZM_TESTS_UNIT_ROUTER_TEST_NODE_H_
