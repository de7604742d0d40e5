// The TLS floor shared by the node's TLS listeners (the smtpserver's
// STARTTLS and smtps ports, admind's HTTPS): TLS 1.2 and 1.3 only, and in
// TLS 1.2 only suites with forward secrecy and an AEAD cipher (AES-GCM,
// ChaCha20-Poly1305), so no CBC suite (Lucky13, padding oracles) unless
// the operator lists one. TLS 1.3 suites are all AEAD: OpenSSL's defaults.
//
//   SSL_CTX* c = ...;
//   if (!zm::tls::ApplyServerFloor(c, config.cipher_list))
//     ... // the list names no suite OpenSSL knows: a configuration error
//
// Header only: the caller links OpenSSL. clusterd's gRPC TLS has the same
// floor from gRPC itself (cluster/conf/cluster_tls.h).
#ifndef ZM_COMMON_TLS_SERVER_H_
#define ZM_COMMON_TLS_SERVER_H_

#include <openssl/ssl.h>

#include <string>

namespace zm::tls {

// The TLS 1.2 suites offered by default (the order is the server's
// preference): ECDHE, then DHE for clients without elliptic curves.
inline constexpr char kAeadTls12Ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:"
    "DHE-RSA-CHACHA20-POLY1305";

// TLS 1.2 as the lowest version, 1.3 the highest, and `tls12_ciphers` (an
// OpenSSL cipher list; empty: kAeadTls12Ciphers) for TLS 1.2. False when
// OpenSSL takes no suite of the list.
inline bool ApplyServerFloor(SSL_CTX* ctx, const std::string& tls12_ciphers) {
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_dh_auto(ctx, 1);  // DHE groups sized to the certificate key
  return SSL_CTX_set_cipher_list(ctx, tls12_ciphers.empty()
                                          ? kAeadTls12Ciphers
                                          : tls12_ciphers.c_str()) == 1;
}

}  // namespace zm::tls

#endif  // ZM_COMMON_TLS_SERVER_H_
