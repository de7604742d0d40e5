// The server TLS context and the description of a finished handshake.
#include "node/smtpserver/smtpserver_tls.h"

#include <openssl/err.h>
#include <openssl/x509.h>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/common/tls_server.h"
#include "node/config/config_file.h"

namespace zm::smtpserver {
namespace {

// Binds resumed sessions to this server (required with client certs).
constexpr unsigned char kSessionIdContext[] = "zmnode-smtpserver";

std::string SslErrors() {
  std::string out;
  for (unsigned long e; (e = ERR_get_error()) != 0;) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    StrAppend(&out, out.empty() ? "" : "; ", buf);
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

absl::Status TlsError(std::string_view what, std::string_view path) {
  return absl::InvalidArgumentError(
      StrCat("TLS: ", what, " ", path, ": ", SslErrors()));
}

absl::StatusOr<std::string> Resolve(const std::string& raw,
                                    const NodeDir& node) {
  if (raw.empty()) return std::string();
  auto v = config::ExpandVariables(raw, node);
  if (!v.ok()) return v.status();
  return v->starts_with("/") ? *v : node.etc_file(*v);
}

// A client certificate is looked at, not enforced here: the handshake
// goes on and DescribeTls reports whether it verified (tls-require-cert
// makes OpenSSL refuse a handshake without any certificate).
int AcceptAnyPeer(int preverify_ok, X509_STORE_CTX* ctx) {
  (void)preverify_ok;
  (void)ctx;
  return 1;
}

}  // namespace

absl::StatusOr<TlsFiles> ResolveTlsFiles(const ServerConfig& config,
                                         const NodeDir& node) {
  TlsFiles f;
  const ServerConfig::Tls& t = config.tls;
  auto cert = Resolve(
      t.cert_file.empty() ? "tls/smtpserver-cert.pem" : t.cert_file, node);
  auto key =
      Resolve(t.key_file.empty() ? "tls/smtpserver-key.pem" : t.key_file, node);
  auto ca = Resolve(t.ca_file, node);
  auto capath = Resolve(t.ca_path, node);
  for (const auto* s : {&cert, &key, &ca, &capath}) {
    if (!s->ok()) return s->status();
  }
  f.cert = *cert;
  f.key = *key;
  f.ca_file = *ca;
  f.ca_path = *capath;
  return f;
}

absl::StatusOr<std::shared_ptr<asio::ssl::context>> MakeTlsContext(
    const ServerConfig& config, const NodeDir& node) {
  const ServerConfig::Tls& t = config.tls;
  if (config.no_starttls && config.smtps_port == 0) {
    return std::shared_ptr<asio::ssl::context>();
  }
  auto files = ResolveTlsFiles(config, node);
  if (!files.ok()) return files.status();
  bool explicit_cert = !t.cert_file.empty() || t.use_tls;
  if (!fs::Exists(files->cert)) {
    if (explicit_cert || config.smtps_port != 0) {
      return absl::InvalidArgumentError(
          StrCat("TLS: no certificate file ", files->cert));
    }
    return std::shared_ptr<asio::ssl::context>();  // TLS off
  }
  auto ctx =
      std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  SSL_CTX* c = ctx->native_handle();
  if (!tls::ApplyServerFloor(c, t.cipher_list)) {
    return TlsError("no usable suite in tls-cipher-list", t.cipher_list);
  }
  SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION |
                             SSL_OP_CIPHER_SERVER_PREFERENCE |
                             SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_use_certificate_chain_file(c, files->cert.c_str()) != 1) {
    return TlsError("cannot use certificate", files->cert);
  }
  if (SSL_CTX_use_PrivateKey_file(c, files->key.c_str(), SSL_FILETYPE_PEM) !=
      1) {
    return TlsError("cannot use key", files->key);
  }
  if (SSL_CTX_check_private_key(c) != 1) {
    return TlsError("key does not match certificate", files->cert);
  }
  if (!files->ca_file.empty() || !files->ca_path.empty()) {
    if (SSL_CTX_load_verify_locations(
            c, files->ca_file.empty() ? nullptr : files->ca_file.c_str(),
            files->ca_path.empty() ? nullptr : files->ca_path.c_str()) != 1) {
      return TlsError("cannot load CA", files->ca_file + files->ca_path);
    }
    if (!files->ca_file.empty()) {
      STACK_OF(X509_NAME)* names =
          SSL_load_client_CA_file(files->ca_file.c_str());
      if (names) SSL_CTX_set_client_CA_list(c, names);
    }
  }
  if (t.ask_cert || t.require_cert) {
    int mode = SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE;
    if (t.require_cert) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(c, mode, AcceptAnyPeer);
  } else {
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
  }
  // Resumption: tickets always, the id cache with tls-use-scache.
  SSL_CTX_set_session_id_context(c, kSessionIdContext,
                                 sizeof kSessionIdContext - 1);
  SSL_CTX_set_timeout(c, t.scache_timeout_sec > 0 ? t.scache_timeout_sec : 300);
  SSL_CTX_set_session_cache_mode(
      c, t.use_scache ? SSL_SESS_CACHE_SERVER : SSL_SESS_CACHE_OFF);
  if (t.use_scache) SSL_CTX_sess_set_cache_size(c, 20000);
  // Fewer TLS 1.3 tickets than OpenSSL's default of 2: one is enough to
  // resume, and each costs a write.
  SSL_CTX_set_num_tickets(c, 1);
  // Release the per-connection read/write buffers while idle.
  SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
  return ctx;
}

smtp::TlsInfo DescribeTls(SSL* ssl) {
  smtp::TlsInfo info;
  info.version = SSL_get_version(ssl);
  const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl);
  if (cipher) {
    info.cipher = SSL_CIPHER_get_name(cipher);
    info.bits = SSL_CIPHER_get_bits(cipher, nullptr);
  }
  info.resumed = SSL_session_reused(ssl) == 1;
  X509* peer = SSL_get1_peer_certificate(ssl);
  if (peer) {
    char buf[512];
    X509_NAME_oneline(X509_get_subject_name(peer), buf, sizeof buf);
    info.peer_subject = buf;
    info.peer_verified = SSL_get_verify_result(ssl) == X509_V_OK;
    X509_free(peer);
  }
  return info;
}

}  // namespace zm::smtpserver
