#include "cluster/conf/cluster_tls.h"

#include <grpc/grpc_security_constants.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "node/common/strings.h"

namespace zm::cluster {
namespace {

namespace gx = grpc::experimental;

absl::Status CheckReadable(const TlsFiles& files) {
  for (auto [what, path] : {std::pair{"tls-cert", &files.cert},
                            std::pair{"tls-key", &files.key},
                            std::pair{"tls-ca", &files.ca}}) {
    if (path->empty()) {
      return absl::FailedPreconditionError(StrCat("no ", what, " file"));
    }
    if (::access(path->c_str(), R_OK) != 0) {
      return absl::FailedPreconditionError(
          StrCat(what, ": cannot read ", *path, ": ", std::strerror(errno)));
    }
  }
  return absl::OkStatus();
}

std::shared_ptr<gx::CertificateProviderInterface> Watcher(
    const TlsFiles& files) {
  return std::make_shared<gx::FileWatcherCertificateProvider>(
      files.key, files.cert, files.ca, files.refresh_seconds);
}

std::vector<std::string> Values(const grpc::AuthContext& auth,
                                const char* name) {
  std::vector<std::string> out;
  for (const auto& v : auth.FindPropertyValues(name)) {
    out.emplace_back(v.data(), v.size());
  }
  return out;
}

}  // namespace

TlsFiles TlsFilesOf(const ClusterConf& conf) {
  TlsFiles f;
  f.cert = conf.tls_cert;
  f.key = conf.tls_key;
  f.ca = conf.tls_ca;
  return f;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> PeerServerCredentials(
    const TlsFiles& files) {
  if (auto s = CheckReadable(files); !s.ok()) return s;
  gx::TlsServerCredentialsOptions opts(Watcher(files));
  opts.watch_root_certs();
  opts.watch_identity_key_cert_pairs();
  opts.set_cert_request_type(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  return gx::TlsServerCredentials(opts);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>>
PeerChannelCredentials(const TlsFiles& files, ServerNameCheck check) {
  if (auto s = CheckReadable(files); !s.ok()) return s;
  gx::TlsChannelCredentialsOptions opts;
  opts.set_certificate_provider(Watcher(files));
  opts.watch_root_certs();
  opts.watch_identity_key_cert_pairs();
  opts.set_verify_server_certs(true);  // the chain, always
  if (check == ServerNameCheck::kHostName) {
    opts.set_certificate_verifier(
        std::make_shared<gx::HostNameCertificateVerifier>());
  } else {
    opts.set_certificate_verifier(
        std::make_shared<gx::NoOpCertificateVerifier>());
    opts.set_check_call_host(false);
  }
  auto creds = gx::TlsCredentials(opts);
  if (creds == nullptr) {
    return absl::InternalError("gRPC refused the TLS channel options");
  }
  return creds;
}

grpc::ChannelArguments PeerChannelArguments(std::string_view peer_node_id,
                                            int64_t max_message_bytes) {
  grpc::ChannelArguments args;
  if (!peer_node_id.empty()) {
    args.SetSslTargetNameOverride(std::string(peer_node_id));
  }
  int bound = static_cast<int>(
      std::min<int64_t>(max_message_bytes, std::numeric_limits<int>::max()));
  args.SetMaxReceiveMessageSize(bound);
  args.SetMaxSendMessageSize(bound);
  return args;
}

bool PeerIdentity::Names(std::string_view node_id) const {
  if (node_id.empty()) return false;
  if (EqualsIgnoreCase(common_name, node_id)) return true;
  for (const auto& d : dns_names) {
    if (EqualsIgnoreCase(d, node_id)) return true;
  }
  return false;
}

absl::StatusOr<PeerIdentity> VerifiedPeer(const grpc::AuthContext& auth) {
  if (!auth.IsPeerAuthenticated()) {
    return absl::UnauthenticatedError("peer presented no verified certificate");
  }
  PeerIdentity id;
  auto cn = Values(auth, GRPC_X509_CN_PROPERTY_NAME);
  if (!cn.empty()) id.common_name = cn.front();
  id.dns_names = Values(auth, GRPC_PEER_DNS_PROPERTY_NAME);
  if (id.common_name.empty() && id.dns_names.empty()) {
    return absl::UnauthenticatedError("peer certificate names nobody");
  }
  return id;
}

absl::StatusOr<PeerIdentity> VerifiedPeer(const grpc::ServerContext& ctx) {
  auto auth = ctx.auth_context();
  if (auth == nullptr) {
    return absl::UnauthenticatedError("connection has no security context");
  }
  return VerifiedPeer(*auth);
}

absl::Status CheckPeerIs(const grpc::ServerContext& ctx,
                         std::string_view claimed_node_id) {
  auto id = VerifiedPeer(ctx);
  if (!id.ok()) return id.status();
  if (!id->Names(claimed_node_id)) {
    return absl::PermissionDeniedError(
        StrCat("peer claims to be '", claimed_node_id,
               "' but its certificate is for '", id->common_name, "'"));
  }
  return absl::OkStatus();
}

}  // namespace zm::cluster
