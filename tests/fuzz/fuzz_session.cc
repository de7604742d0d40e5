// libFuzzer: a whole SMTP session with BasicChecks fed arbitrary bytes.
// The first bytes pick the configuration and how the input is cut into
// reads; the driver acts like the smtpserver (fake spool, fake TLS).
// Invariants: no crash, no hang, bounded output and data, a message is
// stored only when "250 ... queued as" was sent for it, and nothing after
// kClose.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "node/smtp/basic_checks.h"
#include "node/smtp/session.h"

namespace {

using namespace zm::smtp;

class Domains : public LocalDomains {
 public:
  bool IsLocal(std::string_view d) const override { return d == "mx.test"; }
};

void Expect(bool ok) {
  if (!ok) std::abort();
}

size_t Count(const std::string& s, std::string_view what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos;
       p = s.find(what, p + 1)) {
    ++n;
  }
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const uint8_t o = data[0];
  const size_t piece = 1 + data[1] % 64;  // bytes per read
  const uint8_t o2 = data[2];
  std::string_view in(reinterpret_cast<const char*>(data) + 3, size - 3);

  SessionConfig config;
  config.hostname = "mx.test";
  config.max_message_size = (o & 1) ? 200 : 0;
  config.max_header_size = 100;
  config.rcpt_limit = 3;
  config.max_unknown_commands = (o & 2) ? 5 : 0;
  config.starttls = o & 4;
  config.auth_without_tls = o & 8;
  config.vrfy = config.expn = o & 16;
  config.strict_dot = !(o & 32);
  config.bare_newline_normalise = o & 64;
  config.style_flags = (o & 128) ? "R" : "ve";
  config.pipelining = o2 & 1;
  config.chunking = !(o2 & 2);
  config.tarpit_initial_ms = (o2 & 4) ? 10 : 0;
  config.tarpit_exponent = 1.5;
  config.tarpit_max_ms = 1000;
  config.rcvd_auth_user = config.rcvd_tls_mode = config.rcvd_tls_ccert = true;
  ClientInfo client;
  client.addr = "192.0.2.7";
  client.local_addr = "192.0.2.1";
  client.listener = (o2 & 8) ? Listener::kSubmission : Listener::kSmtp;
  client.trusted = o2 & 16;

  Domains domains;
  BasicChecks checks(domains);
  checks.AddUser("alice", "secret");
  Session s(config, client);

  std::string out;
  size_t stored = 0;
  bool open = false;
  std::string message;
  size_t pos = 0;
  bool eof_sent = false;
  // Every Step() either consumes input, finishes a pending action or
  // asks for input; far fewer steps than this per byte.
  const size_t max_steps = 64 + in.size() * 64;
  for (size_t step = 0;; ++step) {
    Expect(step < max_steps);
    Action a = s.Step();
    if (a == Action::kNeedInput || a == Action::kFlush) {
      (void)s.TakeDelayMs();
      out += s.TakeOutput();
      if (a == Action::kFlush) continue;
      if (pos < in.size()) {
        size_t n = std::min(piece, in.size() - pos);
        s.Input(in.substr(pos, n));
        pos += n;
      } else {
        Expect(!eof_sent);  // after EOF the session must close
        s.InputEof();
        eof_sent = true;
      }
    } else if (a == Action::kCheck) {
      zm::smtp::Check c = s.pending_check();
      if (c.kind == CheckKind::kMessage) {
        Expect(open);
        message += s.TakeData();
      }
      s.CheckDone(checks.Decide(s, c));
    } else if (a == Action::kStartTls) {
      Expect(config.starttls && !s.tls());
      out += s.TakeOutput();
      if (o2 & 32) {
        s.TlsFailed();
      } else {
        TlsInfo info;
        info.version = "TLSv1.3";
        info.cipher = "X";
        s.TlsStarted(info);
        Expect(s.state() == Session::State::kGreeting);
      }
    } else if (a == Action::kBeginMessage) {
      Expect(!open);
      Expect(!s.envelope().recipients.empty());
      if (o2 & 64) {
        s.MessageBegun(absl::InternalError("disk"), "", 0);
      } else {
        open = true;
        message.clear();
        s.MessageBegun(absl::OkStatus(), "QID", 1763680000000000);
      }
    } else if (a == Action::kAppend) {
      Expect(open);
      message += s.TakeData();
    } else if (a == Action::kCommit) {
      Expect(open);
      message += s.TakeData();
      if (config.max_message_size) {
        // Received: header plus at most the limit.
        Expect(message.size() <= config.max_message_size + 1024);
      }
      open = false;
      ++stored;
      s.MessageCommitted(absl::OkStatus());
    } else if (a == Action::kAbortMessage) {
      open = false;
    } else {  // kClose
      out += s.TakeOutput();
      Expect(s.Step() == Action::kClose);
      Expect(!s.HasOutput());
      break;
    }
  }
  Expect(Count(out, " queued as QID\r\n") == stored);
  return 0;
}
