// zm::smtpserver::Authenticator: checks the user name and password an SMTP
// client gives with AUTH PLAIN or AUTH LOGIN (RFC 4954).
//
// Two backends, chosen by smtpserver.conf:
//
//   PARAM SMTP-auth-pipe /usr/local/libexec/check-pw
//       ZMailer's external authenticator: run once per attempt, never
//       through a shell, with the user name as its only argument and the
//       password plus a newline on its standard input. Exit status 0: the
//       password is right; 1: it is wrong; anything else (another status,
//       a signal, no answer within smtp-auth-pipe-timeout seconds, default
//       10): the backend failed.
//
//   PARAM smtp-auth-file $MAILVAR/smtp-auth.passwd      (the default path)
//       A file of "user:hash" lines ('#' comments, blank lines ignored),
//       the hash in crypt(3) form: "$6$salt$..." (SHA-512, made by
//       `openssl passwd -6` or `mkpasswd -m sha-512`), "$5$" (SHA-256),
//       "$y$" (yescrypt, `mkpasswd -m yescrypt`) or "$2b$" (bcrypt). Read
//       at start and on every reload; a malformed line is a "file:line:
//       what" error. The comparison of the computed hash is constant-time,
//       and an unknown user costs the same hashing as a known one.
//
//   auto a = MakeAuthenticator(config, node, log);   // file:line errors
//   if (!a.ok()) return fail(a.status());
//   if (*a == nullptr) { /* no backend configured: AUTH is not offered */ }
//   absl::StatusOr<bool> ok = (*a)->Verify("alice", "secret");
//   // OK(true): valid; OK(false): wrong; error: 454 4.7.0 to the client.
//
// Thread-safe: Verify may run on several worker threads at once. It blocks
// (hashing, the pipe program): never call it on an I/O thread.
#ifndef ZM_SMTPSERVER_SMTPSERVER_AUTH_H_
#define ZM_SMTPSERVER_SMTPSERVER_AUTH_H_

#include <memory>
#include <string_view>

#include "absl/status/statusor.h"
#include "node/common/log.h"
#include "node/common/node_dir.h"
#include "node/smtpserver/smtpserver_config.h"

namespace zm::smtpserver {

class Authenticator {
 public:
  virtual ~Authenticator() = default;
  // OK(true): valid; OK(false): wrong user or password;
  // Unavailable: the backend failed (the client gets 454 4.7.0).
  virtual absl::StatusOr<bool> Verify(std::string_view user,
                                      std::string_view password) = 0;
};

// The backend `config` selects: the SMTP-auth-pipe program when set, else
// the credentials file (config.auth_file, or etc/smtp-auth.passwd). A
// null pointer when neither is configured (no pipe, and the default file
// does not exist); an error when a configured file is missing or bad.
absl::StatusOr<std::unique_ptr<Authenticator>> MakeAuthenticator(
    const ServerConfig& config, const NodeDir& node, Logger& log);

// The parts, for tests and `sendmail -bs`.
absl::StatusOr<std::unique_ptr<Authenticator>> MakeFileAuthenticator(
    const std::string& path);
std::unique_ptr<Authenticator> MakePipeAuthenticator(std::string program,
                                                     int timeout_sec,
                                                     Logger& log);

}  // namespace zm::smtpserver

#endif  // ZM_SMTPSERVER_SMTPSERVER_AUTH_H_
