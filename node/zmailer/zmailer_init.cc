// `zmailer init DIR`: a complete, working node in one directory.
#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

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
  if (!IsIpAddress(opts.smtp_address)) {
    return absl::InvalidArgumentError(StrCat(
        "--smtp-address '", opts.smtp_address, "' is not an IP address"));
  }
  if (opts.smtp_port < 1 || opts.smtp_port > 65535) {
    return absl::InvalidArgumentError(
        StrCat("--smtp-port ", opts.smtp_port, " is not a port number"));
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
  };
  std::string names;
  size_t count = 0;
  for (const EmbeddedFile& f : EmbeddedDefaults()) {
    std::string text = SubstitutePlaceholders(f.contents(), values);
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

  std::string spool_names;
  for (auto f : spool::kFolders) StrAppend(&spool_names, " ", f);
  std::string out = StrCat("created node ", node.home, " (node-id ", node_id,
                           ", hostname ", hostname, ")\n");
  StrAppend(&out, "  etc/       ", count, " files: ", names, "\n");
  StrAppend(&out, "  etc/tls/   smtpserver-cert.pem, smtpserver-key.pem ",
            "(self-signed for ", hostname, ", ", cert.days / 365, " years)\n");
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
