// Test helper: a dnsmasq on 127.0.0.1:<free port> serving the records a
// test gives, for tests of anything that resolves names (zm::dns, the
// router, the smtp agent, smtpserver checks).
//
//   zm::testutil::Dnsmasq dns({"mx-host=example.test,mx1.example.test,10",
//                              "host-record=mx1.example.test,192.0.2.1"});
//   ASSERT_TRUE(dns.Start()) << dns.error();
//   options.servers = {dns.server()};      // "127.0.0.1:PORT"
//
// Names under .test that are not configured answer NXDOMAIN; names under
// fail.test answer SERVFAIL/time out (forwarded to a dead port).
#ifndef ZM_TESTS_UNIT_DNS_DNSMASQ_H_
#define ZM_TESTS_UNIT_DNS_DNSMASQ_H_

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/unit/testing/wait.h"

namespace zm::testutil {

class Dnsmasq {
 public:
  // `lines` are dnsmasq.conf lines; `ttl` is the TTL of every local record.
  explicit Dnsmasq(std::vector<std::string> lines, int ttl = 300)
      : lines_(std::move(lines)), ttl_(ttl) {}
  ~Dnsmasq() {
    Stop();
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

  bool Start() {
    char tmpl[] = "/tmp/zm-dnsmasq-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return Fail("mkdtemp");
    dir_ = tmpl;
    port_ = FreeLoopbackPort(SOCK_DGRAM);
    int dead = FreeLoopbackPort(SOCK_DGRAM);
    std::string conf = dir_ + "/dnsmasq.conf";
    {
      std::ofstream out(conf);
      out << "no-resolv\nno-hosts\nbind-interfaces\nlisten-address=127.0.0.1\n"
          << "local=/test/\nserver=/fail.test/127.0.0.1#" << dead << "\n"
          << "local-ttl=" << ttl_ << "\nhost-record=ready.test,127.0.0.9\n";
      for (const auto& l : lines_) out << l << "\n";
    }
    std::string log = dir_ + "/dnsmasq.log";
    pid_ = fork();
    if (pid_ < 0) return Fail("fork");
    if (pid_ == 0) {
      FILE* f = freopen(log.c_str(), "w", stderr);
      (void)f;
      std::string port = "--port=" + std::to_string(port_);
      std::string cf = "--conf-file=" + conf;
      execl("/usr/sbin/dnsmasq", "dnsmasq", "--keep-in-foreground",
            "--user=root", "--pid-file=", "--log-facility=-", cf.c_str(),
            port.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    // Ready when the port is bound (dnsmasq binds only after reading its
    // configuration); a dead child fails at once.
    bool up = WaitFor([&] {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return true;
      }
      return !UdpPortFree(port_);
    });
    if (pid_ < 0) return Fail("dnsmasq exited; see " + log);
    if (!up) return Fail("dnsmasq did not bind");
    return true;
  }

  void Stop() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }

  std::string server() const { return "127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  const std::string& error() const { return error_; }

 private:
  bool Fail(std::string what) {
    error_ = std::move(what);
    return false;
  }
  static bool UdpPortFree(int port) {
    int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
  }

  std::vector<std::string> lines_;
  int ttl_;
  std::string dir_;
  std::string error_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace zm::testutil

#endif  // ZM_TESTS_UNIT_DNS_DNSMASQ_H_
