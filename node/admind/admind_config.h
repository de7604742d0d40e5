// admind's configuration: etc/admin.conf (docs/admin-api.md).
//
//   listen      127.0.0.1:8025      address:port ([v6]:port) of the listener
//   tls-cert    $MAILVAR/tls/admin-cert.pem   HTTPS when both are set
//   tls-key     $MAILVAR/tls/admin-key.pem
//   tls-cipher-list ...             TLS 1.2 suites (OpenSSL syntax); default
//                                   AEAD only, no CBC (common/tls_server.h)
//   auth-file   $MAILVAR/scheduler.auth       users for Basic auth
//   read-auth   auto                yes | no | auto (auth to read only when
//                                   the listener is beyond loopback)
//   max-body    65536               bytes of a request body
//   max-headers 64                  header lines of a request
//   max-events-clients 16           concurrent GET /api/v1/events streams
//   json-log    no                  yes: admind writes the event log as JSON
//                                   lines too, log/maillog.json
//
//   auto conf = zm::admind::LoadAdminConfig(node);  // defaults if no file
#ifndef ZM_ADMIND_ADMIND_CONFIG_H_
#define ZM_ADMIND_ADMIND_CONFIG_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "node/common/node_dir.h"

namespace zm::admind {

enum class ReadAuth { kYes, kNo, kAuto };

struct AdminConfig {
  std::string listen_host = "127.0.0.1";
  int listen_port = 8025;
  std::string tls_cert;
  std::string tls_key;
  std::string tls_cipher_list;  // empty: zm::tls::kAeadTls12Ciphers
  std::string auth_file;  // absolute; default etc/scheduler.auth
  ReadAuth read_auth = ReadAuth::kAuto;
  size_t max_body = 65536;
  int max_headers = 64;
  int max_events_clients = 16;
  bool json_log = false;  // log/maillog.json (admind_jsonlog.h)

  bool tls() const { return !tls_cert.empty(); }
  // Whether GET requests need a user (read-auth, and for auto whether the
  // listener is bound beyond loopback).
  bool ReadNeedsAuth() const;
  // "http://127.0.0.1:8025/"; a wildcard listener is shown as
  // `wildcard_host` (default the loopback address).
  std::string Url(std::string_view wildcard_host = "") const;
};

// "HOST:PORT" or "[V6]:PORT" -> host, port. InvalidArgument naming `what`.
absl::Status ParseListen(std::string_view text, std::string* host, int* port);

// Parses admin.conf text ("file:line: what" errors).
absl::StatusOr<AdminConfig> ParseAdminConfig(std::string_view text,
                                             const std::string& file,
                                             const NodeDir& node);
// etc/admin.conf of `node`; the defaults when the file does not exist.
absl::StatusOr<AdminConfig> LoadAdminConfig(const NodeDir& node);

}  // namespace zm::admind

#endif  // ZM_ADMIND_ADMIND_CONFIG_H_
