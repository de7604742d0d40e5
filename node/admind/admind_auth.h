// HTTP Basic authentication against scheduler.auth users (the same file,
// rights and address masks as the scheduler's admin socket).
//
//   Authenticator auth(conf.auth_file);
//   auto who = auth.Check(req.get_header_value("Authorization"), peer_ip,
//                         admin::kTokenEtrn);
//   if (who.code != 200) ...;  // 401 (no/bad credentials, an unknown user,
//                              // or a user whose masks exclude the client)
//                              // or 403 (rights, or an address outside the
//                              // masks of every user)
//
// The file is re-read when its modification time changes, so adding a user
// needs no restart. Rights: reading needs any user; POST/DELETE of policy
// need KILL (or ALL), POST etrn needs ETRN. The client's address comes
// first: outside the masks of every user it gets 403, whatever it sends.
// Otherwise a refusal is 401 whether the user exists or not (the reason,
// for the log, says which); the first entry of the user whose masks admit
// the client is the one used.
#ifndef ZM_ADMIND_ADMIND_AUTH_H_
#define ZM_ADMIND_ADMIND_AUTH_H_

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

#include "absl/synchronization/mutex.h"
#include "node/admin/scheduler_auth.h"

namespace zm::admind {

// The user and password of an "Authorization: Basic ..." value.
struct BasicCredentials {
  std::string user;
  std::string password;
};
std::optional<BasicCredentials> ParseBasicAuth(std::string_view header);

// The body of every 401 answer (AuthResult::reason is for the log).
inline constexpr std::string_view kAuthRequired =
    "authentication required (HTTP Basic, a scheduler.auth user)";

struct AuthResult {
  int code = 401;      // 200, 401 or 403
  std::string user;    // when 200
  std::string reason;  // one line, when not 200
};

class Authenticator {
 public:
  explicit Authenticator(std::string auth_file) : path_(std::move(auth_file)) {}

  // `peer_ip` is the client's address as text; `need` the token(s) the
  // request needs (0: any user).
  AuthResult Check(std::string_view authorization, std::string_view peer_ip,
                   uint32_t need);

 private:
  std::string path_;
  absl::Mutex mu_;
  std::optional<admin::SchedulerAuth> auth_ ABSL_GUARDED_BY(mu_);
  struct timespec mtime_ ABSL_GUARDED_BY(mu_) = {0, 0};
};

}  // namespace zm::admind

#endif  // ZM_ADMIND_ADMIND_AUTH_H_
