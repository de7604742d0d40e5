// zm::smtpclient: the client side of SMTP and LMTP for the smtp and lmtp
// transport agents: a connection with deadlines (TCP or UNIX socket,
// STARTTLS through OpenSSL), bounded reply parsing, EHLO capabilities, and
// one mail transaction with PIPELINING, SIZE, 8BITMIME (or a local
// conversion to quoted-printable), SMTPUTF8, DSN parameters and CHUNKING.
//
//   auto conn = zm::smtpclient::Connection::ConnectTcp("192.0.2.1", 25, t);
//   zm::smtpclient::Client client(*std::move(conn), timeouts, false);
//   if (auto f = client.Open("mx1.example.net")) { /* *f: why not */ }
//   std::vector<zm::smtpclient::Outcome> r = client.Send(envelope, message);
//
// Every read is bounded (reply lines, lines per reply) and every wait has
// a deadline; a peer that hangs, drops or talks garbage gives temporary
// outcomes with a diagnostic. A recipient is reported delivered only after
// the reply to the final dot (or BDAT LAST) said so.
//
// Thread-compatible: one Client per thread.
#ifndef ZM_TA_SMTPCLIENT_SMTPCLIENT_H_
#define ZM_TA_SMTPCLIENT_SMTPCLIENT_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

namespace zm::smtpclient {

// Bounds of what a peer may send us.
inline constexpr size_t kMaxReplyLine = 4096;
inline constexpr size_t kMaxReplyLines = 200;

struct Reply {
  int code = 0;                    // 250
  std::string enhanced;            // "2.1.5", or "" if the peer sent none
  std::vector<std::string> lines;  // the text after "250-" / "250 "

  int klass() const { return code / 100; }
  // "250 2.1.5 text of the first line" (for diagnostics).
  std::string Text() const;
};

// Parses complete reply lines (no CRLF). Feed lines until Done().
class ReplyParser {
 public:
  // InvalidArgument for a line that is not "ddd", "ddd text", "ddd-text",
  // or whose code differs from the first line's; OutOfRange over the bounds.
  absl::Status Feed(std::string_view line);
  bool Done() const { return done_; }
  Reply Take();

 private:
  Reply reply_;
  bool done_ = false;
};

// A DANE TLSA record (RFC 6698): usage 2 (DANE-TA) or 3 (DANE-EE),
// selector 0 (certificate) or 1 (public key), matching type 0 (full), 1
// (SHA-256) or 2 (SHA-512), and the association data (binary).
struct TlsaRecord {
  int usage = 3;
  int selector = 1;
  int mtype = 1;
  std::string data;
  // "3 1 1 ab12..." (presentation form, for diagnostics).
  std::string Text() const;
};

struct TlsOptions {
  bool verify = false;      // check the chain (and the name if set)
  std::string ca_file;      // "" = the system's CA store
  std::string verify_name;  // the name the certificate must carry
  std::string sni;          // server name indication ("" = none)
  // Check the chain and name as `verify` does, but let the handshake
  // succeed anyway; Connection::verify_error() tells the outcome (MTA-STS
  // testing mode).
  bool check_only = false;
  // DANE (RFC 7672): when not empty, the peer must match one of these
  // records (OpenSSL's DANE verifier); DANE-EE(3) matches ignore names and
  // expiry, DANE-TA(2) needs a chain to the matched key naming one of
  // `dane_names` (the first is the TLSA base domain, the MX host).
  // `verify`, `ca_file` and `verify_name` are not used then.
  std::vector<TlsaRecord> dane;
  std::vector<std::string> dane_names;
};

class Connection {
 public:
  // `ip` is a numeric IPv4 or IPv6 address.
  static absl::StatusOr<std::unique_ptr<Connection>> ConnectTcp(
      const std::string& ip, int port, int timeout_ms);
  static absl::StatusOr<std::unique_ptr<Connection>> ConnectUnix(
      const std::string& path, int timeout_ms);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  absl::Status Write(std::string_view data, int timeout_ms);
  // One line without its CRLF (a bare LF is accepted too).
  absl::StatusOr<std::string> ReadLine(size_t max, int timeout_ms);
  absl::StatusOr<Reply> ReadReply(int timeout_ms);
  // The TLS handshake on the open connection (after a 220 to STARTTLS).
  absl::Status StartTls(const TlsOptions& options, int timeout_ms);

  // All bytes until the peer closes the connection (an HTTP/1.0 body),
  // at most `max` (OutOfRange past it).
  absl::StatusOr<std::string> ReadToEnd(size_t max, int timeout_ms);

  bool tls() const { return ssl_ != nullptr; }
  // After StartTls with check_only: "" if the chain and name verified, else
  // why not.
  const std::string& verify_error() const { return verify_error_; }
  // After a DANE handshake: the TLSA record that matched ("3 1 1 ab..").
  std::string DaneMatch() const;
  // "TLSv1.3 TLS_AES_256_GCM_SHA384", "" without TLS.
  std::string TlsInfo() const;
  // True if bytes from the peer are waiting unread (a pipelining violation
  // or a stale reply: the connection should not be reused).
  bool HasPendingInput() const { return !rbuf_.empty(); }

 private:
  explicit Connection(int fd) : fd_(fd) {}
  absl::StatusOr<size_t> ReadSome(char* buf, size_t n, int64_t deadline_ms);

  int fd_ = -1;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  std::string rbuf_;
  std::string verify_error_;
};

// RFC 5321 section 4.5.3.2 timeouts, in milliseconds.
struct Timeouts {
  int connect_ms = 60000;
  int greeting_ms = 300000;
  int command_ms = 300000;  // EHLO, MAIL, RCPT, RSET, STARTTLS, QUIT
  int data_init_ms = 120000;
  int data_block_ms = 180000;
  int data_term_ms = 600000;
  // All of them the same (tests use a second or two).
  static Timeouts All(int ms) { return {ms, ms, ms, ms, ms, ms}; }
};

struct Capabilities {
  bool esmtp = false;
  bool pipelining = false;
  bool size = false;
  uint64_t max_size = 0;  // 0 = no limit announced
  bool eightbitmime = false;
  bool dsn = false;
  bool chunking = false;
  bool smtputf8 = false;
  bool starttls = false;
  size_t rcpt_limit = 0;  // ZMailer's X-RCPTLIMIT n (0 = none announced)
};
Capabilities ParseEhlo(const Reply& ehlo);

struct Recipient {
  std::string address;
  std::string notify;  // "SUCCESS,FAILURE", "NEVER", "" = not given
  std::string orcpt;   // the original address, "" = not given
};

struct Envelope {
  std::string sender;  // "" = <>
  std::string ret;     // "FULL" / "HDRS" / ""
  std::string envid;   // "" = not given
  std::vector<Recipient> recipients;
};

// BDAT chunk size when the peer offers CHUNKING (Client::set_bdat_chunk).
inline constexpr size_t kDefaultBdatChunk = 1u << 20;

// What became of one recipient (or of the whole attempt).
struct Outcome {
  int klass = 4;     // 2 delivered, 4 try later, 5 failed
  std::string dsn;   // "2.0.0", "5.1.1"
  std::string diag;  // "smtp; 550 5.1.1 ... (in reply to RCPT TO)"
};

class Client {
 public:
  // `lmtp`: LHLO instead of EHLO, and one reply per accepted recipient
  // after the final dot (RFC 2033).
  Client(std::unique_ptr<Connection> conn, Timeouts timeouts, bool lmtp);
  ~Client();

  // Reads the greeting and says EHLO (HELO if EHLO is refused; LHLO for
  // LMTP). nullopt when the peer is ready for mail.
  std::optional<Outcome> Open(std::string_view helo_name);
  // STARTTLS, the handshake and EHLO again.
  std::optional<Outcome> StartTls(const TlsOptions& options);

  // The message to the envelope's recipients. `message` is RFC 5322 text
  // with LF line endings. One outcome per envelope recipient, in order.
  // Usually one transaction; when the peer refuses recipients with "too
  // many recipients" (452 / 4.5.3, or 552 treated as 452 per RFC 5321
  // 4.5.3.1.10), or there are more than its X-RCPTLIMIT or
  // set_rcpt_limit() allows, the rest go in further transactions on the
  // same connection, each recipient in exactly one.
  std::vector<Outcome> Send(const Envelope& env, std::string_view message);

  // True when the last Send() delivered to nobody and failed for reasons
  // of the server rather than of the recipients: the connection broke
  // before the message was sent, MAIL FROM got a 4xx, or a 421 came before
  // the message. Another server (the next MX) may do better.
  bool server_failed() const { return server_failed_; }

  // Ready for the next transaction; false if the connection is not
  // usable. After a completed transaction nothing is sent (the peer's
  // state is already reset); after an aborted one RSET goes out in front
  // of the next MAIL FROM (in the same write when PIPELINING is offered).
  bool Reset();

  // Largest BDAT chunk (CHUNKING); larger messages go in several chunks.
  void set_bdat_chunk(size_t bytes) { bdat_chunk_ = bytes > 0 ? bytes : 1; }
  // At most this many recipients per transaction (0 = no limit of ours).
  void set_rcpt_limit(size_t n) { rcpt_limit_ = n; }
  // QUIT (best effort) and close.
  void Quit();

  bool usable() const { return usable_; }
  const Capabilities& caps() const { return caps_; }
  Connection& connection() { return *conn_; }

 private:
  struct Prepared;
  std::optional<Outcome> Hello(std::string_view helo_name);
  absl::StatusOr<Reply> Command(std::string_view line, int timeout_ms);
  // One transaction for the recipients `idx` of the envelope. Fills their
  // outcomes; those refused as "too many recipients" go to `too_many`.
  void Transaction(const Prepared& p, const std::vector<size_t>& idx,
                   std::vector<Outcome>* out, std::vector<size_t>* too_many);
  // The message as BDAT chunks; the final reply(s) are read by the caller.
  absl::Status SendChunks(const std::string& wire, std::optional<Reply>* bad);

  std::unique_ptr<Connection> conn_;
  Timeouts t_;
  bool lmtp_;
  bool usable_ = false;
  std::string helo_name_;
  Capabilities caps_;
  bool rset_pending_ = false;   // the last transaction was aborted
  bool server_failed_ = false;  // see server_failed()
  size_t bdat_chunk_ = kDefaultBdatChunk;
  size_t rcpt_limit_ = 0;
};

// --- Message helpers, public for tests. ---

// Any byte >= 0x80 in `s`.
bool Has8Bit(std::string_view s);
// The header part of a message (up to the empty line) has non-ASCII bytes.
bool HeaderHas8Bit(std::string_view message);
// The message for DATA: CRLF line ends, leading dots doubled, a final CRLF,
// and the terminating ".\r\n".
std::string DataWire(std::string_view message);
// The message for BDAT: CRLF line ends, a final CRLF, no dot-stuffing.
std::string BdatWire(std::string_view message);
// Converts 8-bit MIME entities (recursively through multiparts) to
// quoted-printable and fixes their Content-Transfer-Encoding headers.
std::string ConvertTo7Bit(std::string_view message);
// Quoted-printable of `body` (LF line ends kept as hard breaks).
std::string QuotedPrintable(std::string_view body);

}  // namespace zm::smtpclient

#endif  // ZM_TA_SMTPCLIENT_SMTPCLIENT_H_
