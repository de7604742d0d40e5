// `zmailer init DIR`: a complete, working node in one directory.
#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "cluster/conf/cluster_conf.h"
#include "node/admind/admind_config.h"
#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/spool/spool.h"
#include "node/zmailer/embedded_defaults.h"
#include "node/zmailer/zmailer.h"

#ifdef ZM_HAVE_RELATIONS
#include "node/relations/newdb.h"
#endif

namespace zm::zmailer {
namespace {

bool IsHostnameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '.';
}

absl::Status CheckHostname(std::string_view name) {
  if (name.empty() || name.size() > 253 || name.front() == '.' ||
      name.front() == '-' || name.back() == '.') {
    return absl::InvalidArgumentError(
        StrCat("--hostname '", name, "' is not a host name"));
  }
  for (char c : name) {
    if (!IsHostnameChar(c)) {
      return absl::InvalidArgumentError(
          StrCat("--hostname '", name, "' is not a host name"));
    }
  }
  return absl::OkStatus();
}

// Node ids end up in queue ids, file names and log lines: keep them plain.
absl::Status CheckNodeId(std::string_view id) {
  bool ok = !id.empty() && id.size() <= 64;
  for (char c : id) {
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.');
  }
  if (!ok) {
    return absl::InvalidArgumentError(StrCat(
        "--node-id '", id, "' must be 1-64 letters, digits, '-', '_' or '.'"));
  }
  return absl::OkStatus();
}

bool IsIpAddress(const std::string& s) {
  unsigned char buf[sizeof(struct in6_addr)];
  return ::inet_pton(AF_INET, s.c_str(), buf) == 1 ||
         ::inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

std::string SystemHostname() {
  char host[256] = {0};
  if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') {
    return "localhost";
  }
  return host;
}

// Secrets (scheduler.auth holds passwords) are for the node's owner only.
int ModeFor(std::string_view name) {
  return name.ends_with(".auth") ? 0600 : 0644;
}

absl::Status CheckTarget(const std::string& dir, bool force) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return fs::ErrnoStatus("stat", dir, errno);
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(dir + " exists and is not a folder");
  }
  auto names = fs::ListDir(dir, /*include_hidden=*/true);
  if (!names.ok()) return names.status();
  if (!names->empty() && !force) {
    return absl::FailedPreconditionError(
        dir + " is not empty (use --force to write a node into it anyway)");
  }
  return absl::OkStatus();
}

// The fleet flags, checked before anything is written. The node id names
// the node's certificate, so a fleet member's must be a DNS name.
absl::Status CheckFleetOptions(const InitOptions& opts,
                               const std::string& node_id) {
  if (opts.gossip_listen.empty()) {
    for (auto [flag, set] :
         {std::pair{"--advertise", !opts.advertise.empty()},
          std::pair{"--seed", !opts.seeds.empty()},
          std::pair{"--seed-dns", !opts.seed_dns.empty()},
          std::pair{"--seed-srv", !opts.seed_srv.empty()},
          std::pair{"--cluster-ca", !opts.cluster_ca.empty()}}) {
      if (set) {
        return absl::InvalidArgumentError(
            StrCat(flag, " needs --gossip-listen"));
      }
    }
    return absl::OkStatus();
  }
  if (node_id.find('_') != std::string::npos) {
    return absl::InvalidArgumentError(
        StrCat("--node-id '", node_id,
               "' names a fleet member's certificate: no '_'"));
  }
  auto check = [](const char* flag,
                  const std::string& v) -> absl::StatusOr<cluster::HostPort> {
    auto hp = cluster::ParseHostPort(v);
    if (!hp.ok()) {
      return absl::InvalidArgumentError(
          StrCat(flag, ": ", Message(hp.status())));
    }
    return hp;
  };
  auto listen = check("--gossip-listen", opts.gossip_listen);
  if (!listen.ok()) return listen.status();
  if (!opts.advertise.empty()) {
    auto adv = check("--advertise", opts.advertise);
    if (!adv.ok()) return adv.status();
    if (adv->IsWildcard()) {
      return absl::InvalidArgumentError(
          "--advertise must be an address peers can dial");
    }
  } else if (listen->IsWildcard()) {
    return absl::InvalidArgumentError(
        "--gossip-listen is a wildcard address: add --advertise ADDR:PORT");
  }
  for (const auto& seed : opts.seeds) {
    if (auto hp = check("--seed", seed); !hp.ok()) return hp.status();
  }
  if (!opts.seed_dns.empty() && IsIpAddress(opts.seed_dns)) {
    return absl::InvalidArgumentError(
        StrCat("--seed-dns '", opts.seed_dns, "' is an address, not a name"));
  }
  if (!opts.seed_dns.empty() && !check("--seed-dns", opts.seed_dns + ":1").ok()) {
    return absl::InvalidArgumentError(
        StrCat("--seed-dns '", opts.seed_dns, "' is not a DNS name"));
  }
  return absl::OkStatus();
}

// The lines `zmailer init` appends to the cluster.conf template.
std::string FleetBlock(const InitOptions& opts) {
  std::string out =
      "\n# This node's fleet membership, written by zmailer init.\n";
  StrAppend(&out, "gossip-listen   ", opts.gossip_listen, "\n");
  if (!opts.advertise.empty()) {
    StrAppend(&out, "advertise       ", opts.advertise, "\n");
  }
  for (const auto& seed : opts.seeds) {
    StrAppend(&out, "seed            ", seed, "\n");
  }
  if (!opts.seed_dns.empty()) {
    StrAppend(&out, "seed-dns        ", opts.seed_dns, "\n");
  }
  if (!opts.seed_srv.empty()) {
    StrAppend(&out, "seed-srv        ", opts.seed_srv, "\n");
  }
  StrAppend(&out, opts.cluster_ca.empty()
                      ? "# Your PKI's files (the node refuses to start "
                        "without them):\n"
                      : "# Issued from the fleet CA in ",
            opts.cluster_ca, opts.cluster_ca.empty() ? "" : ":\n");
  out +=
      "tls-cert        $MAILVAR/tls/cluster-cert.pem\n"
      "tls-key         $MAILVAR/tls/cluster-key.pem\n"
      "tls-ca          $MAILVAR/tls/cluster-ca.pem\n";
  return out;
}

// The node's cluster certificate: issued from the fleet CA, or left to the
// operator.
absl::Status InitFleetTls(const InitOptions& opts, const std::string& node_id,
                          const std::string& tls_dir, std::string* report) {
  if (opts.cluster_ca.empty()) {
    *report = StrCat("  etc/tls/   put your PKI's cluster-cert.pem, ",
                     "cluster-key.pem and cluster-ca.pem here (CN and DNS ",
                     "SAN ", node_id, ")\n");
    return absl::OkStatus();
  }
  CertificateOptions cert;
  cert.common_name = node_id;
  cert.dns_names = {node_id};
  cert.client_auth = true;
  cert.days = 825;
  auto adv = cluster::ParseHostPort(opts.advertise.empty() ? opts.gossip_listen
                                                           : opts.advertise);
  if (adv.ok() && IsIpAddress(adv->host)) {
    cert.ip_addresses = {adv->host};
  } else if (adv.ok()) {
    cert.dns_names.push_back(adv->host);
  }
  std::string ca_dir = std::filesystem::absolute(opts.cluster_ca).string();
  bool created = false;
  if (auto s = IssueFromFleetCa(ca_dir, cert, tls_dir + "/cluster-cert.pem",
                                tls_dir + "/cluster-key.pem",
                                tls_dir + "/cluster-ca.pem", &created);
      !s.ok()) {
    return s;
  }
  *report = StrCat("  etc/tls/   cluster-cert.pem, cluster-key.pem (", node_id,
                   ", from the fleet CA in ", ca_dir,
                   created ? ", created now" : "", "), cluster-ca.pem\n");
  return absl::OkStatus();
}

}  // namespace

std::string SubstitutePlaceholders(
    std::string_view text, const std::map<std::string, std::string>& values) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    size_t at = text.find('@', i);
    if (at == std::string_view::npos) break;
    size_t end = text.find('@', at + 1);
    if (end == std::string_view::npos) break;
    auto it = values.find(std::string(text.substr(at + 1, end - at - 1)));
    if (it == values.end()) {
      // Not ours (an address, say): keep the first '@' and look again
      // from the second, which may open a placeholder.
      out.append(text.substr(i, end - i));
      i = end;
      continue;
    }
    out.append(text.substr(i, at - i));
    out.append(it->second);
    i = end + 1;
  }
  out.append(text.substr(i));
  return out;
}

absl::Status InitNode(const InitOptions& opts, std::string* report) {
  if (opts.dir.empty()) return absl::InvalidArgumentError("init needs a DIR");
  std::string hostname =
      opts.hostname.empty() ? SystemHostname() : opts.hostname;
  if (auto s = CheckHostname(hostname); !s.ok()) return s;
  std::string node_id = opts.node_id;
  if (node_id.empty()) node_id = hostname.substr(0, hostname.find('.'));
  if (auto s = CheckNodeId(node_id); !s.ok()) return s;
  if (auto s = CheckFleetOptions(opts, node_id); !s.ok()) return s;
  if (!IsIpAddress(opts.smtp_address)) {
    return absl::InvalidArgumentError(StrCat(
        "--smtp-address '", opts.smtp_address, "' is not an IP address"));
  }
  if (opts.smtp_port < 1 || opts.smtp_port > 65535) {
    return absl::InvalidArgumentError(
        StrCat("--smtp-port ", opts.smtp_port, " is not a port number"));
  }
  std::string admin_host;
  int admin_port = 0;
  if (auto s = admind::ParseListen(opts.admin_listen, &admin_host, &admin_port);
      !s.ok()) {
    return absl::InvalidArgumentError(StrCat("--admin-listen ", Message(s)));
  }
  NodeDir node = LocateNode(opts.dir);
  if (auto s = CheckTarget(node.home, opts.force); !s.ok()) return s;

  for (const std::string& d : {node.home, node.etc(), node.db(), node.log(),
                               node.run(), node.mail()}) {
    if (auto s = fs::MakeDirs(d, 0755); !s.ok()) return s;
  }
  // The node may hold other people's mail: its mail store is private.
  if (::chmod(node.mail().c_str(), 0700) != 0) {
    return fs::ErrnoStatus("chmod", node.mail(), errno);
  }
  if (auto s = spool::Spool(node.spool(), "").CreateLayout(); !s.ok()) {
    return s;
  }

  const std::map<std::string, std::string> values = {
      {"HOSTNAME", hostname},
      {"NODE_ID", node_id},
      {"SMTP_ADDRESS", opts.smtp_address},
      {"SMTP_PORT", std::to_string(opts.smtp_port)},
      {"ADMIN_LISTEN", opts.admin_listen},
  };
  std::string names;
  size_t count = 0;
  for (const EmbeddedFile& f : EmbeddedDefaults()) {
    std::string text = SubstitutePlaceholders(f.contents(), values);
    if (std::string_view(f.name) == "cluster.conf" &&
        !opts.gossip_listen.empty()) {
      text += FleetBlock(opts);
    }
    if (auto s =
            fs::WriteFileAtomically(node.etc(), f.name, text, ModeFor(f.name));
        !s.ok()) {
      return s;
    }
    StrAppend(&names, count == 0 ? "" : " ", f.name);
    ++count;
  }

  std::string tls_dir = node.etc_file("tls");
  if (auto s = fs::MakeDirs(tls_dir, 0755); !s.ok()) return s;
  CertificateOptions cert;
  cert.common_name = hostname;
  cert.dns_names = {hostname};
  if (hostname != "localhost") cert.dns_names.push_back("localhost");
  cert.ip_addresses = {"127.0.0.1", "::1"};
  if (opts.smtp_address != "127.0.0.1" && opts.smtp_address != "::1" &&
      opts.smtp_address != "0.0.0.0" && opts.smtp_address != "::") {
    cert.ip_addresses.push_back(opts.smtp_address);
  }
  if (auto s =
          WriteSelfSignedCertificate(cert, tls_dir + "/smtpserver-cert.pem",
                                     tls_dir + "/smtpserver-key.pem");
      !s.ok()) {
    return s;
  }

  std::string fleet_report;
  if (!opts.gossip_listen.empty()) {
    if (auto s = InitFleetTls(opts, node_id, tls_dir, &fleet_report);
        !s.ok()) {
      return s;
    }
    // What the cluster agent will read must parse, files included.
    if (!opts.cluster_ca.empty()) {
      if (auto cc = cluster::LoadClusterConf(node); !cc.ok()) {
        return cc.status();
      }
    }
  }

  std::string spool_names;
  for (auto f : spool::kFolders) StrAppend(&spool_names, " ", f);
  std::string out = StrCat("created node ", node.home, " (node-id ", node_id,
                           ", hostname ", hostname, ")\n");
  StrAppend(&out, "  etc/       ", count, " files: ", names, "\n");
  StrAppend(&out, "  etc/tls/   smtpserver-cert.pem, smtpserver-key.pem ",
            "(self-signed for ", hostname, ", ", cert.days / 365, " years)\n");
  out += fleet_report;
  StrAppend(&out, "  spool/    ", spool_names, "\n");

#ifdef ZM_HAVE_RELATIONS
  std::string db_report;
  if (auto s = relations::NewDb(node, "", &db_report); !s.ok()) {
    *report = out;
    return absl::Status(
        s.code(),
        StrCat("compiling the relations: ", Message(s),
               " (fix it, then run 'zmailer -C ", node.home, " newdb')"));
  }
  for (std::string_view line : Split(db_report, '\n', /*skip_empty=*/true)) {
    StrAppend(&out, "  db/        ", line, "\n");
  }
#else
  StrAppend(&out, "  db/        (this build has no relations library; ",
            "run 'zmailer newdb' with a complete build)\n");
#endif
  StrAppend(&out, "  log/ run/ mail/\n");
  StrAppend(&out, "smtpserver listens on ", opts.smtp_address, " port ",
            opts.smtp_port, "\n\nTo use it:\n  export ZMAILER_HOME=", node.home,
            "\n  zmailer start\n");
  *report = out;
  return absl::OkStatus();
}

}  // namespace zm::zmailer
