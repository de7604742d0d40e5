// Ident (RFC 1413): asking the client host who holds a TCP connection.
//
// With `PARAM identflg` the smtpserver connects from the address the
// client reached to the client's port 113, sends the port pair and reads
// one reply line (smtpserver_ident_conn.cc does the I/O on the session's
// strand, bounded by ident-timeout and kMaxIdentReply bytes):
//
//   std::string q = IdentQuery(client_port, server_port);  // "4711 , 25\r\n"
//   IdentReply r = ParseIdentReply(line, client_port, server_port);
//   if (r.kind == IdentReply::Kind::kUserId) use(r.user);
//
// The parser is strict: the port pair must be the one asked about, the
// reply type USERID (with an operating system field and a user id of 1 to
// 512 printable ASCII characters) or ERROR (one of RFC 1413's error types
// or an X token); anything else is kInvalid with the reason. Pure
// functions.
#ifndef ZM_SMTPSERVER_SMTPSERVER_IDENT_H_
#define ZM_SMTPSERVER_SMTPSERVER_IDENT_H_

#include <cstddef>
#include <string>
#include <string_view>

namespace zm::smtpserver {

// The longest reply line read, CRLF included (RFC 1413 allows a 512-octet
// user id; the rest of a line is short).
constexpr size_t kMaxIdentReply = 1024;

struct IdentReply {
  enum class Kind { kUserId, kError, kInvalid };
  Kind kind = Kind::kInvalid;
  std::string opsys;  // kUserId: "UNIX", "OTHER", "UNIX , US-ASCII"
  std::string user;   // kUserId: the user id as sent, spaces trimmed
  std::string error;  // kError: "NO-USER", ...; kInvalid: what was wrong
};

// The query line for a connection from `client_port` (on the client) to
// `server_port` (ours), CRLF included.
std::string IdentQuery(int client_port, int server_port);

// One reply line, its CRLF (or LF) removed.
IdentReply ParseIdentReply(std::string_view line, int client_port,
                           int server_port);

}  // namespace zm::smtpserver

#endif  // ZM_SMTPSERVER_SMTPSERVER_IDENT_H_
