// Test helpers for tests that start real programs: a bounded readiness
// poll (never a timing assertion) and a free loopback port.
#ifndef ZM_TESTS_UNIT_TESTING_WAIT_H_
#define ZM_TESTS_UNIT_TESTING_WAIT_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <thread>

namespace zm::testutil {

inline constexpr int kDefaultWaitMs = 30000;

// Polls `pred` every 20 ms until it holds or `timeout_ms` pass; the bound
// keeps a broken program from hanging the suite.
inline bool WaitFor(const std::function<bool()>& pred,
                    int timeout_ms = kDefaultWaitMs) {
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

// A port on 127.0.0.1 that was free a moment ago (TCP, or UDP with
// SOCK_DGRAM).
inline int FreeLoopbackPort(int type = SOCK_STREAM) {
  int fd = ::socket(AF_INET, type, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

}  // namespace zm::testutil

#endif  // ZM_TESTS_UNIT_TESTING_WAIT_H_
