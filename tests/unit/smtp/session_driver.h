// A test driver for zm::smtp::Session: drives it as the servers do, with
// an in-memory spool, BasicChecks (or a test's own verdicts) and a fake
// TLS handshake.
//
//   Driver d(Config());
//   EXPECT_EQ(d.Feed("EHLO c\r\n"), "250-...");
#ifndef ZM_TESTS_UNIT_SMTP_SESSION_DRIVER_H_
#define ZM_TESTS_UNIT_SMTP_SESSION_DRIVER_H_

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "node/smtp/basic_checks.h"
#include "node/smtp/session.h"

namespace zm::smtp::sessiontest {

class FakeDomains : public LocalDomains {
 public:
  bool IsLocal(std::string_view d) const override {
    return d == "mx.test" || d == "localhost";
  }
};

struct Stored {
  mail::Envelope env;
  std::string data;
  bool frozen = false;
};

// Drives a Session like the servers do, with an in-memory spool and
// BasicChecks (or `decide`, when set, for the checks it answers).
class Driver {
 public:
  explicit Driver(SessionConfig config = {}, ClientInfo client = Client())
      : config_(std::move(config)),
        checks_(domains_),
        session_(config_, std::move(client)) {
    checks_.AddUser("alice", "secret");
    greeting = Feed("");
  }

  // Answers the checks it returns a verdict for; BasicChecks does the rest.
  std::function<std::optional<Verdict>(const Session&, const Check&)> decide;
  std::vector<Check> asked;
  std::string greeting;
  uint32_t delay_ms = 0;
  int tls_handshakes = 0;
  bool tls_fails = false;

  static ClientInfo Client() {
    ClientInfo c;
    c.addr = "192.0.2.7";
    c.port = "40000";
    c.local_addr = "192.0.2.1";
    return c;
  }

  // Feeds `input` in one piece; returns everything written back, and the
  // number of separate writes in *writes.
  std::string Feed(std::string_view input, bool eof = false,
                   int* writes = nullptr) {
    session_.Input(input);
    if (eof) session_.InputEof();
    std::string out;
    int n = 0;
    for (;;) {
      Action a = session_.Step();
      auto flush = [&] {
        delay_ms += session_.TakeDelayMs();
        std::string o = session_.TakeOutput();
        if (!o.empty()) {
          out += o;
          ++n;
        }
      };
      if (a == Action::kNeedInput) {
        flush();
        break;
      } else if (a == Action::kFlush) {
        flush();
      } else if (a == Action::kCheck) {
        Check c = session_.pending_check();
        if (c.kind == CheckKind::kMessage) {
          current_.data += session_.TakeData();
          c.staged_path = "/spool/public/QID1";
        }
        asked.push_back(c);
        std::optional<Verdict> v;
        if (decide) v = decide(session_, c);
        session_.CheckDone(v ? *v : checks_.Decide(session_, c));
      } else if (a == Action::kStartTls) {
        delay_ms += session_.TakeDelayMs();
        flush();
        ++tls_handshakes;
        if (tls_fails) {
          session_.TlsFailed();
        } else {
          TlsInfo info;
          info.version = "TLSv1.3";
          info.cipher = "TLS_AES_256_GCM_SHA384";
          info.bits = 256;
          info.peer_subject = "CN=client.example";
          session_.TlsStarted(info);
        }
      } else if (a == Action::kBeginMessage) {
        if (begin_error.ok()) {
          current_ = Stored{session_.envelope(), ""};
          open_ = true;
          session_.MessageBegun(absl::OkStatus(), "QID1", 1763680000000000);
        } else {
          session_.MessageBegun(begin_error, "", 1763680000000000);
        }
      } else if (a == Action::kAppend) {
        current_.data += session_.TakeData();
      } else if (a == Action::kCommit) {
        current_.data += session_.TakeData();
        current_.frozen = session_.frozen();
        if (commit_error.ok()) stored.push_back(current_);
        open_ = false;
        session_.MessageCommitted(commit_error);
      } else if (a == Action::kAbortMessage) {
        open_ = false;
        ++aborted;
      } else {  // kClose
        if (open_) ++aborted;
        open_ = false;
        flush();
        closed = true;
        break;
      }
    }
    if (writes) *writes = n;
    return out;
  }

  Session& session() { return session_; }

  absl::Status begin_error;
  absl::Status commit_error;
  std::vector<Stored> stored;
  int aborted = 0;
  bool closed = false;

 private:
  SessionConfig config_;
  FakeDomains domains_;
  BasicChecks checks_;
  Session session_;
  Stored current_;
  bool open_ = false;
};

inline SessionConfig Config() {
  SessionConfig c;
  c.hostname = "mx.test";
  return c;
}

}  // namespace zm::smtp::sessiontest

#endif  // ZM_TESTS_UNIT_SMTP_SESSION_DRIVER_H_
