// zmailer: the administrator's command for one node.
//
//   zmailer init DIR [--force] [--node-id ID] [--hostname NAME]
//                    [--smtp-address IP] [--smtp-port N]
//                    [--gossip-listen ADDR:PORT [--advertise ADDR:PORT]
//                     [--seed ADDR:PORT]... [--seed-dns NAME]
//                     [--seed-srv NAME] [--cluster-ca CADIR]]
//   zmailer [-C DIR] cluster [--json]
//   zmailer [-C DIR] start [-f] | stop | kill | reload | status
//   zmailer [-C DIR] freeze | thaw
//   zmailer [-C DIR] newdb [RELATION] | newaliases
//
// `start` forks the supervisor (RunSupervisor), which starts the node's
// long-running programs (zm::health::DaemonPrograms()), restarts one that
// dies (RestartPolicy) and stops them in reverse order on SIGTERM.
// Everything here returns a status or an exit code; nothing throws and
// nothing reads a global (the node is passed in).
#ifndef ZM_ZMAILER_ZMAILER_H_
#define ZM_ZMAILER_ZMAILER_H_

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "node/common/log.h"
#include "node/common/node_dir.h"

namespace zm::zmailer {

// Exit codes shared by every subcommand.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitNotRunning = 3;  // `status`, as LSB init scripts
inline constexpr int kExitUsage = 64;      // EX_USAGE

// The whole command line; returns the process exit code.
int Main(int argc, char** argv);

// ---- init ---------------------------------------------------------------

struct InitOptions {
  std::string dir;
  bool force = false;    // write into a non-empty directory
  std::string node_id;   // default: the short host name
  std::string hostname;  // default: the system's host name
  std::string smtp_address = "127.0.0.1";
  int smtp_port = 2525;
  std::string admin_listen = "127.0.0.1:8025";  // admind, etc/admin.conf

  // Fleet membership, written into etc/cluster.conf. Without
  // gossip_listen the node is on its own and the others must be empty.
  std::string gossip_listen;  // ADDR:PORT
  std::string advertise;      // ADDR:PORT peers dial (default gossip_listen)
  std::vector<std::string> seeds;
  std::string seed_dns, seed_srv;
  // The fleet's CA folder: created (ca-cert.pem, ca-key.pem) if missing;
  // this node's certificate is issued from it into etc/tls/cluster-*.pem.
  // Empty: cluster.conf names etc/tls/cluster-{cert,key,ca}.pem and the
  // operator puts their own PKI's files there.
  std::string cluster_ca;
};

// Creates a complete node in opts.dir: folders, every embedded template in
// etc/ (placeholders substituted), a self-signed certificate in etc/tls/,
// and the compiled relations in db/; with gossip_listen, a fleet member's
// cluster.conf and (cluster_ca) its certificate from the fleet CA. `report` (not null) gets a few lines
// saying what was made. FailedPrecondition if the directory is not empty
// and !force; InvalidArgument for a bad option value.
absl::Status InitNode(const InitOptions& opts, std::string* report);

// Replaces each @NAME@ whose NAME is a key of `values`; other text, and
// @WORDS@ that are not keys, are kept as they are.
std::string SubstitutePlaceholders(
    std::string_view text, const std::map<std::string, std::string>& values);

// ---- TLS ----------------------------------------------------------------

struct CertificateOptions {
  std::string common_name;
  std::vector<std::string> dns_names;     // subjectAltName DNS entries
  std::vector<std::string> ip_addresses;  // subjectAltName IP entries
  int days = 3650;
  bool ca = false;           // a CA (CA:TRUE, keyCertSign), not an end entity
  bool client_auth = false;  // also a TLS client's (mutual TLS between peers)
};

// Writes a self-signed P-256 certificate (PEM, 0644) and its private key
// (PEM, 0600), each atomically. Internal with OpenSSL's reason on failure.
absl::Status WriteSelfSignedCertificate(const CertificateOptions& opts,
                                        const std::string& cert_path,
                                        const std::string& key_path);

// The same, signed by the CA in ca_cert_path/ca_key_path (PEM) instead.
// NotFound/Internal naming the CA file that cannot be read or does not
// match its key.
absl::Status WriteIssuedCertificate(const CertificateOptions& opts,
                                    const std::string& ca_cert_path,
                                    const std::string& ca_key_path,
                                    const std::string& cert_path,
                                    const std::string& key_path);

// Makes sure `ca_dir` holds a fleet CA (ca-cert.pem, ca-key.pem 0600),
// creating it if missing, then issues a node certificate for `opts` into
// cert_path/key_path and copies the CA certificate to ca_copy_path. An
// exclusive lock on ca_dir/.lock keeps parallel inits sharing the folder
// from making two CAs. `created` (may be null) says whether the CA is new.
absl::Status IssueFromFleetCa(const std::string& ca_dir,
                              const CertificateOptions& opts,
                              const std::string& cert_path,
                              const std::string& key_path,
                              const std::string& ca_copy_path, bool* created);

// ---- supervisor ---------------------------------------------------------

struct SupervisorOptions {
  NodeDir node;
  std::vector<std::string> programs;  // start order; stopped in reverse
  bool foreground = false;            // programs get -f and share our stderr
  // Background start: the supervisor writes "O<status text>" once every
  // program is up, or "F<reason>" when one fails to start, then closes
  // the descriptor. -1: nobody waits.
  int report_fd = -1;
};

// Runs until SIGTERM/SIGINT; returns the exit code. `log` is the
// supervisor's own logger ("zmailer").
int RunSupervisor(const SupervisorOptions& opts, Logger& log);

}  // namespace zm::zmailer

#endif  // ZM_ZMAILER_ZMAILER_H_
