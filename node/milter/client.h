// zm::milter::Client: one MTA-side connection to a milter (Sendmail/Postfix
// milter protocol version 6), used for one SMTP session and reused across
// its transactions.
//
//   auto spec = ParseSpec("dkim inet:127.0.0.1:8891 timeout=10");  // config
//   Client c(*spec);
//   if (absl::Status st = c.Open(); !st.ok()) ...;   // connect + negotiate
//   Result r = c.Connect(macros, "host.example", '4', 40000, "192.0.2.1");
//   r = c.Helo({}, "client.example");
//   r = c.Mail({{"{mail_addr}", "a@b"}}, "<a@b>", {"SIZE=10"});
//   r = c.Rcpt({}, "<c@d>", {});
//   r = c.Data({});
//   r = c.Header("Subject", " hello");  ... r = c.EndOfHeaders({{"i", id}});
//   r = c.Body(chunk);                  // CRLF lines, <= kBodyChunk bytes
//   r = c.EndOfMessage({}, [&](const Modification& m) { ...; return ok; });
//   if (r.action == Result::Action::kReject) reply(r.code, r.enhanced, ...);
//
// Every stage the milter asked not to see (negotiated kNo* steps) is
// skipped with kContinue; where it said it will not answer (kNr*) nothing
// is awaited. Every wait is bounded: the connect timeout, the reply
// timeout per answer (a "progress" answer starts it again, a bounded
// number of times) and the end-of-message timeout. A timeout, a closed
// connection or a malformed reply gives kFailed and closes the connection;
// the caller applies its default action. Blocking; not thread-safe (one
// session's worker at a time).
#ifndef ZM_MILTER_CLIENT_H_
#define ZM_MILTER_CLIENT_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "node/milter/protocol.h"

namespace zm::milter {

// One configured milter: `NAME inet:HOST:PORT|inet6:[ADDR]:PORT|unix:PATH
// [connect-timeout=S] [timeout=S] [eom-timeout=S]
// [default=tempfail|accept] [listeners=smtp,submission,smtps]`.
struct Spec {
  std::string name;
  std::string address;  // as written
  int connect_timeout_ms = 30000;
  int reply_timeout_ms = 30000;  // each answer but the end of message's
  int eom_timeout_ms = 300000;   // the answers to the end of message
  enum class Default { kTempFail, kAccept } on_failure = Default::kTempFail;
  std::vector<std::string> listeners;  // lower-case; empty = all
};

// Parses the value of a `PARAM milter` line. InvalidArgument says what is
// wrong (the caller adds file:line).
absl::StatusOr<Spec> ParseSpec(std::string_view value);

using Macros = std::vector<std::pair<std::string, std::string>>;

struct Result {
  enum class Action {
    kContinue,  // go on
    kAccept,    // accept; no more callbacks for this message (connection
                // at connect/helo)
    kReject,    // 5xx: code/enhanced/text set when the milter gave them
    kTempFail,  // 4xx: likewise
    kDiscard,   // accept the message and drop it
    kSkip,      // (body only) no more body chunks wanted
    kFailed,    // the milter is unusable: `error` says why
  };
  Action action = Action::kContinue;
  int code = 0;  // 0: the milter gave no reply code (use the default text)
  std::string enhanced;
  std::vector<std::string> text;
  std::string error;
};

class Client {
 public:
  explicit Client(Spec spec);
  ~Client();  // says QUIT without waiting and closes
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const Spec& spec() const { return spec_; }
  bool is_open() const { return fd_ >= 0; }
  // The negotiated steps (step::k*) and actions (action::k*).
  uint32_t steps() const { return steps_; }
  uint32_t actions() const { return actions_; }
  // Header values are sent (and come back) with their leading space.
  bool leading_space() const { return steps_ & step::kHeaderLeadingSpace; }

  // Connects and negotiates options. Unavailable when the milter cannot
  // be reached or answers nonsense.
  absl::Status Open();

  Result Connect(const Macros& macros, std::string_view hostname, char family,
                 uint16_t port, std::string_view address);
  Result Helo(const Macros& macros, std::string_view name);
  Result Mail(const Macros& macros, std::string_view path,
              const std::vector<std::string>& params);
  Result Rcpt(const Macros& macros, std::string_view path,
              const std::vector<std::string>& params);
  Result Data(const Macros& macros);
  // `value` as it follows the colon (leading space removed here unless
  // leading_space()); continuation lines joined with "\n".
  Result Header(std::string_view name, std::string_view value);
  Result EndOfHeaders(const Macros& macros);
  Result Body(std::string_view chunk);
  // Modifications are handed to `on_mod` as they arrive (a replaced body
  // in chunks); an error from it fails the milter.
  Result EndOfMessage(
      const Macros& macros,
      const std::function<absl::Status(const Modification&)>& on_mod);
  // Ends the current message (no answer is expected).
  void Abort();

  // Sends QUIT (after ABORT with `abort_first`: a message is in progress)
  // without waiting, and closes. The destructor does it too.
  void Close(bool abort_first = false);

 private:
  Result Stage(const Macros& macros, char command, std::string packet,
               uint32_t no_step, uint32_t no_reply_step);
  absl::Status Send(std::string_view bytes, int timeout_ms);
  absl::StatusOr<Response> Receive(int timeout_ms);
  Result Answer(int timeout_ms,
                const std::function<absl::Status(const Modification&)>* on_mod);
  Result Fail(std::string why);

  Spec spec_;
  int fd_ = -1;
  uint32_t steps_ = 0;
  uint32_t actions_ = 0;
  PacketReader reader_;
};

}  // namespace zm::milter

#endif  // ZM_MILTER_CLIENT_H_
