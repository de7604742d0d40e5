// The fleet's mutual TLS for gRPC: every peer presents a certificate from
// the fleet CA (cluster.conf tls-cert/tls-key/tls-ca) and checks the
// other's against it.
//
//   auto files = zm::cluster::TlsFilesOf(conf);
//   // Server: refuses a client without a certificate from the fleet CA.
//   auto server_creds = zm::cluster::PeerServerCredentials(files);
//   builder.AddListeningPort(conf.gossip_listen.ToString(), *server_creds);
//   // In a handler: who is really calling?
//   if (auto s = zm::cluster::CheckPeerIs(*ctx, request->from_node());
//       !s.ok()) return ToGrpc(s);                 // PermissionDenied
//   // Client: present our certificate, verify the server's.
//   auto channel_creds = zm::cluster::PeerChannelCredentials(files);
//   auto channel = grpc::CreateCustomChannel(
//       peer.address, *channel_creds,
//       zm::cluster::PeerChannelArguments(peer.node_id, conf.max_message_bytes));
//
// Names: a node's certificate carries its node id as CN and as DNS SAN,
// and its advertise address as IP SAN. A channel made with the peer's node
// id checks the server certificate names it (TLS host name verification);
// without one (a seed known only by address) the address is checked
// against the IP SANs. A channel from PeerChannelCredentials(files,
// ServerNameCheck::kFleetOnly) only checks the chain (for seeds reached by
// a DNS name); the caller then learns who answered with VerifiedPeer() on
// the ClientContext's auth context.
//
// Reload: the three files are watched (every `refresh_seconds`) and new
// handshakes use the new certificate, key or CA without a restart. Replace
// them atomically (rename), key before certificate; a key that does not
// match its certificate is ignored until it does.
//
// TLS 1.2 is the lowest version gRPC's TLS credentials accept; 1.3 is
// preferred. Thread-safe: credentials and channels are shared freely.
#ifndef ZM_CLUSTER_CONF_CLUSTER_TLS_H_
#define ZM_CLUSTER_CONF_CLUSTER_TLS_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cluster/conf/cluster_conf.h"

namespace zm::cluster {

struct TlsFiles {
  std::string cert;  // PEM: this node's certificate (chain)
  std::string key;   // PEM: its private key
  std::string ca;    // PEM: the fleet CA(s)
  unsigned refresh_seconds = 10;  // how often the files are looked at
};

TlsFiles TlsFilesOf(const ClusterConf& conf);

// Server credentials that require, and verify against the CA, a client
// certificate. FailedPrecondition naming the file if one cannot be read
// (gRPC would otherwise only fail at the first handshake).
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> PeerServerCredentials(
    const TlsFiles& files);

enum class ServerNameCheck {
  kHostName,   // the target name (node id or IP) must be in the certificate
  kFleetOnly,  // any certificate from the fleet CA; check VerifiedPeer()
};

// Channel credentials that present this node's certificate and verify the
// server's chain against the CA (and its name, see ServerNameCheck).
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>>
PeerChannelCredentials(const TlsFiles& files,
                       ServerNameCheck check = ServerNameCheck::kHostName);

// Arguments of a channel to a peer: the TLS target name is the peer's node
// id when known (empty: the dialled address), and messages are bounded by
// `max_message_bytes` both ways.
grpc::ChannelArguments PeerChannelArguments(std::string_view peer_node_id,
                                            int64_t max_message_bytes);

// The identity a verified peer certificate carries.
struct PeerIdentity {
  std::string common_name;
  std::vector<std::string> dns_names;  // subjectAltName DNS entries

  // True if `node_id` is the CN or one of the DNS SANs (case-insensitive).
  bool Names(std::string_view node_id) const;
};

// The peer's certificate identity from an authenticated gRPC context
// (server side: ServerContext::auth_context(); client side, after a call:
// ClientContext::auth_context()). Unauthenticated when the connection
// carries no verified certificate.
absl::StatusOr<PeerIdentity> VerifiedPeer(const grpc::AuthContext& auth);
absl::StatusOr<PeerIdentity> VerifiedPeer(const grpc::ServerContext& ctx);

// OK if the caller's verified certificate names `claimed_node_id`;
// PermissionDenied saying who it really is otherwise (Unauthenticated
// without a certificate).
absl::Status CheckPeerIs(const grpc::ServerContext& ctx,
                         std::string_view claimed_node_id);

}  // namespace zm::cluster

#endif  // ZM_CLUSTER_CONF_CLUSTER_TLS_H_
