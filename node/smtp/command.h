// zm::smtp command grammar (RFC 5321 section 4.1, RFC 1870, 3461, 6152,
// 6531): I/O-free, table-driven, and safe on any input.
//
//   Command c = ParseCommand("MAIL FROM:<a@example.org> SIZE=123");
//   // c.verb == Verb::kMail, c.arg == "FROM:<a@example.org> SIZE=123"
//   PathResult p = ParseMailFrom(c.arg, options);
//   if (!p.ok()) reply(p.error...);
//   // p.address == "a@example.org", p.params.size == 123
//
// Nothing here allocates more than a bounded multiple of its input, and no
// input makes it assert; a fuzz target feeds it arbitrary bytes.
#ifndef ZM_SMTP_COMMAND_H_
#define ZM_SMTP_COMMAND_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "node/smtp/reply.h"

namespace zm::smtp {

// RFC 5321 section 4.5.3.1.
inline constexpr size_t kMaxCommandLine = 1000;  // including CRLF
// AUTH lines (the command with its initial response, and the responses
// to 334 challenges) may be up to 12,288 bytes with CRLF (RFC 4954 4).
inline constexpr size_t kMaxAuthLine = 12288;
inline constexpr size_t kMaxLocalPart = 64;
inline constexpr size_t kMaxDomain = 255;
inline constexpr size_t kMaxPath = 256;
inline constexpr size_t kMaxEnvid = 100;  // RFC 3461 section 4.4
inline constexpr size_t kMaxOrcpt = 500;

enum class Verb {
  kHelo,
  kEhlo,
  kMail,
  kRcpt,
  kData,
  kRset,
  kNoop,
  kQuit,
  kHelp,
  // Known, but not offered by this server (502 5.5.1).
  kVrfy,
  kExpn,
  kEtrn,
  kStarttls,
  kAuth,
  kBdat,
  kTurn,
  kAtrn,
  kVerb,
  kSend,
  kSoml,
  kSaml,
  kEmpty,    // empty line
  kUnknown,  // anything else
};

struct Command {
  Verb verb = Verb::kUnknown;
  std::string_view name;  // the verb as sent
  std::string_view arg;   // after the verb and one space; may be empty
};

// Splits a command line (without its CRLF). Verbs are case-insensitive.
Command ParseCommand(std::string_view line);

// Which extensions the server offered; parameters of the others are
// refused with 555 5.5.4.
struct Extensions {
  bool esmtp = true;  // client used EHLO: any parameter at all is allowed
  bool size = true;
  bool eightbitmime = true;
  bool dsn = true;
  bool smtputf8 = true;
  bool auth = true;       // MAIL ... AUTH=<mailbox> (RFC 4954 section 5)
  bool deliverby = true;  // MAIL ... BY=<seconds>;<R|N>[T] (RFC 2852)
};

struct PathOptions {
  Extensions ext;
  // Strict RFC 5321: a recipient needs a domain (except <postmaster>).
  // Local trusted submission (sendmail -bs) may give bare user names.
  bool require_domain = true;
  // Sloppy syntax (a HELO pattern without the R style flag): spaces after
  // the colon and a path without angle brackets are accepted. Strict
  // syntax refuses both with 501 5.5.4.
  bool sloppy = false;
};

// MAIL FROM parameters (RFC 1870, 6152, 3461, 6531).
struct MailParams {
  std::optional<uint64_t> size;
  std::string body;   // "", "7BIT", "8BITMIME"
  std::string ret;    // "", "FULL", "HDRS"
  std::string envid;  // decoded xtext
  bool smtputf8 = false;
  std::string auth;  // AUTH= decoded ("<>" = unknown submitter)
  std::string by;    // BY= as given ("3600;R", "-60;NT")
};

// RCPT TO parameters (RFC 3461).
struct RcptParams {
  std::string notify;  // "" or "NEVER" or e.g. "SUCCESS,FAILURE"
  std::string orcpt;   // decoded: "rfc822;user@example"
};

struct PathResult {
  bool ok() const { return !error.has_value(); }
  std::optional<ReplyId> error;  // set on failure
  std::string detail;            // reply text for the failure
  std::string address;           // without <>; "" is the null path
  MailParams mail;
  RcptParams rcpt;
};

// `arg` is the whole argument of MAIL ("FROM:<path> params").
PathResult ParseMailFrom(std::string_view arg, const PathOptions& options);
// `arg` is the whole argument of RCPT ("TO:<path> params").
PathResult ParseRcptTo(std::string_view arg, const PathOptions& options);

// A domain name or address literal ("[192.0.2.1]", "[IPv6:...]"), as HELO,
// ETRN and addresses use them; non-ASCII labels (U-labels) are accepted.
bool ValidDomainName(std::string_view domain);

// The domain of an address ("" when it has none), without a trailing dot,
// lower-cased; address literals keep their brackets ("[127.0.0.1]").
std::string AddressDomain(std::string_view address);

}  // namespace zm::smtp

#endif  // ZM_SMTP_COMMAND_H_
