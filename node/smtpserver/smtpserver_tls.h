// The smtpserver's TLS: one server context for STARTTLS (RFC 3207) and the
// implicit-TLS port (465), built from smtpserver.conf.
//
//   PARAM tls-cert-file $MAILVAR/tls/smtpserver-cert.pem   (the defaults:
//   PARAM tls-key-file  $MAILVAR/tls/smtpserver-key.pem     `zmailer init`
//                                                            makes them)
//   PARAM tls-CAfile    $MAILVAR/tls/clients-ca.pem  # client certificates
//   PARAM tls-ask-cert 1      # ask for a client certificate (optional)
//   PARAM tls-require-cert 1  # ... and refuse the handshake without one
//   PARAM tls-use-scache      # server-side session cache (besides tickets)
//   PARAM tls-scache-timeout 3600
//   PARAM tls-cipher-list ECDHE+AESGCM:ECDHE+AES   # TLS 1.2 suites (OpenSSL
//                                                  # syntax); default: AEAD
//
// TLS 1.2 and 1.3 only; in TLS 1.2 no CBC suite unless tls-cipher-list
// names one (node/common/tls_server.h). Sessions resume with TLS session tickets (always)
// and, with tls-use-scache, from a server-side cache by session id; both
// live for tls-scache-timeout seconds.
//
//   auto ctx = MakeTlsContext(config, node);   // nullptr: TLS is off
//   asio::ssl::stream<tcp::socket> tls(std::move(socket), **ctx);
//   co_await tls.async_handshake(asio::ssl::stream_base::server, ...);
//   smtp::TlsInfo info = DescribeTls(tls.native_handle());
//
// The context is immutable once made and shared by every session (a
// reload makes a new one; sessions keep the one they started with).
#ifndef ZM_SMTPSERVER_SMTPSERVER_TLS_H_
#define ZM_SMTPSERVER_SMTPSERVER_TLS_H_

#include <openssl/ssl.h>

#include <asio/ssl/context.hpp>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "node/common/node_dir.h"
#include "node/smtp/check.h"
#include "node/smtpserver/smtpserver_config.h"

namespace zm::smtpserver {

// The certificate and key files `config` names, $VARIABLES expanded and
// relative paths under etc/; the `zmailer init` defaults when not set.
struct TlsFiles {
  std::string cert, key, ca_file, ca_path;
};
absl::StatusOr<TlsFiles> ResolveTlsFiles(const ServerConfig& config,
                                         const NodeDir& node);

// nullptr (OK) when TLS is off: NoSTARTTLS with no smtps port, or no
// certificate configured and none at the default path (unless use-tls
// asks for it). An error names the file that cannot be used.
absl::StatusOr<std::shared_ptr<asio::ssl::context>> MakeTlsContext(
    const ServerConfig& config, const NodeDir& node);

// What the finished handshake on `ssl` agreed: version, cipher, bits,
// client certificate subject and whether it verified, resumption.
smtp::TlsInfo DescribeTls(SSL* ssl);

}  // namespace zm::smtpserver

#endif  // ZM_SMTPSERVER_SMTPSERVER_TLS_H_
