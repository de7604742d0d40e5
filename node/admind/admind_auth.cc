#include "node/admind/admind_auth.h"

#include <openssl/crypto.h>
#include <sys/stat.h>

#include <algorithm>

#include "node/common/strings.h"
#include "node/smtp/sasl.h"

namespace zm::admind {

std::optional<BasicCredentials> ParseBasicAuth(std::string_view header) {
  header = Trim(header);
  if (!StartsWithIgnoreCase(header, "basic ")) return std::nullopt;
  std::string_view b64 = Trim(header.substr(6));
  if (b64.empty() || b64.size() > 1024 || b64.size() % 4 != 0) {
    return std::nullopt;
  }
  std::string out;
  if (!smtp::Base64Decode(b64, &out)) return std::nullopt;
  auto colon = out.find(':');
  if (colon == std::string::npos) return std::nullopt;
  return BasicCredentials{out.substr(0, colon), out.substr(colon + 1)};
}

AuthResult Authenticator::Check(std::string_view authorization,
                                std::string_view peer_ip, uint32_t need) {
  AuthResult r;
  auto peer = admin::PeerAddress::Parse(peer_ip);
  if (!peer) {
    r.reason = "unknown client address";
    return r;
  }
  absl::MutexLock lock(&mu_);
  struct stat st;
  if (stat(path_.c_str(), &st) == 0 &&
      (!auth_ || st.st_mtim.tv_sec != mtime_.tv_sec ||
       st.st_mtim.tv_nsec != mtime_.tv_nsec)) {
    auto loaded = admin::LoadSchedulerAuth(path_);
    if (loaded.ok()) {
      auth_ = std::move(*loaded);
      mtime_ = st.st_mtim;
    }
  }
  // 403 depends on the client's address alone: outside the masks of every
  // user, nobody may log in from there, whatever the credentials. Any
  // other refusal is 401, whether the user exists or not, so the answer
  // tells a stranger nothing about the user names; the log says why.
  const bool admitted =
      auth_ && std::any_of(auth_->entries.begin(), auth_->entries.end(),
                           [&](const admin::AuthEntry& entry) {
                             return auth_->Find(entry.user, *peer) != nullptr;
                           });
  if (auth_ && !admitted) {
    r.code = 403;
    r.reason = StrCat("no scheduler.auth user may log in from ", peer_ip,
                      " (address masks)");
    return r;
  }
  auto creds = ParseBasicAuth(authorization);
  if (!creds) {
    r.reason = std::string(kAuthRequired);
    return r;
  }
  const admin::AuthEntry* e = auth_ ? auth_->Find(creds->user, *peer) : nullptr;
  if (e == nullptr) {
    const bool named =
        auth_ && std::any_of(auth_->entries.begin(), auth_->entries.end(),
                             [&](const admin::AuthEntry& entry) {
                               return entry.user == creds->user;
                             });
    r.reason = named ? StrCat("user '", creds->user, "' may not log in from ",
                              peer_ip, " (scheduler.auth address masks)")
                     : StrCat("unknown user '", creds->user, "'");
    return r;
  }
  // Compare in constant time so the answer's timing tells nothing.
  if (e->password.size() != creds->password.size() ||
      CRYPTO_memcmp(e->password.data(), creds->password.data(),
                    e->password.size()) != 0) {
    r.reason = StrCat("wrong password for user '", creds->user, "'");
    return r;
  }
  if (need != 0 && (e->tokens & need) != need) {
    r.code = 403;
    r.reason = StrCat("user '", creds->user, "' lacks the right for this");
    return r;
  }
  r.code = 200;
  r.user = creds->user;
  return r;
}

}  // namespace zm::admind
