// smtp: the transport agent that sends mail out by SMTP
// (docs/transport-agents.md). `smtpx` is `smtp -x`.
//
//   smtp [-C DIR] [-x] [-F RELAY] [-p PORT] [-S TLSFILE] [-T SECS]
//        [-H HELONAME] [-c CHANNEL] [-B BDATCHUNK] [-s] [-8]
//
// For each job it finds the destination's servers (MX records in
// preference order, else the name's A/AAAA; `-x` skips MX; `-F` sends
// everything to one relay; `[ip]`, `host:port` and `[ip]:port` hosts are
// taken literally), connects, says EHLO, does STARTTLS as the TLS policy
// says, and sends all the job's recipients in one transaction (more when
// the peer limits recipients per transaction). A server that fails at
// connect, greeting, EHLO, STARTTLS or MAIL FROM (4xx, 421, a broken
// connection) makes it try the next one. The connection stays open for
// the next job to the same destination.
#ifndef ZM_TA_SMTP_SMTP_H_
#define ZM_TA_SMTP_SMTP_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "node/common/log.h"
#include "node/common/node_dir.h"
#include "node/dns/resolver.h"
#include "node/dns/secure_resolver.h"
#include "node/ta/common/ta.h"
#include "node/ta/smtpclient/smtpclient.h"
#include "node/tlspolicy/mtasts.h"
#include "node/tlspolicy/refresher.h"
#include "node/tlspolicy/tlsrpt.h"

namespace zm::smtp {

// One line of the TLS policy file (etc/smtp-tls.conf):
//   DESTINATION  none|may|encrypt|verify  [ca=FILE] [name=HOST]
// DESTINATION: a domain, ".suffix" (any name under it), "[ip]", "*".
struct TlsPolicy {
  enum class Level { kNone, kMay, kEncrypt, kVerify };
  Level level = Level::kMay;
  std::string ca_file;      // verify: the CA file ("" = system store)
  std::string verify_name;  // verify: the name to match ("" = MX host name)
};

// Settings lines of the same file (KEY=VALUE, no destination has a '='):
//   dane=yes|no          DANE when etc/resolver.conf has a trust anchor
//   mta-sts=yes|no       MTA-STS lookups, fetches and checks
//   mta-sts-ca=FILE      CA file for policy fetches and for MX
//                        certificates under MTA-STS ("" = system store)
//   mta-sts-port=N       the HTTPS port of policy hosts (tests)
//   mta-sts-timeout=SECS the policy fetch deadline
//   tlsrpt=yes|no        record TLS reporting data (log/tlsrpt/)
struct SecureSettings {
  bool dane = true;
  bool mta_sts = true;
  std::string mta_sts_ca;
  int mta_sts_port = 443;
  int mta_sts_timeout_ms = 30000;
  bool tlsrpt = true;
};

class TlsPolicies {
 public:
  // InvalidArgument "file:line: what" for a bad line. A missing file is
  // an error too (the -S option names it).
  static absl::StatusOr<TlsPolicies> Load(const std::string& path);
  static absl::StatusOr<TlsPolicies> Parse(std::string_view text,
                                           std::string_view file);
  // The policy for a destination (the job's host without port, lower case).
  TlsPolicy For(std::string_view destination) const;
  // A rule naming the destination itself or a suffix of it (not "*"):
  // such a rule overrides DANE and MTA-STS.
  std::optional<TlsPolicy> Explicit(std::string_view destination) const;
  const SecureSettings& settings() const { return settings_; }
  // Relative file names of the settings are in the node's etc/.
  void ResolveFiles(const NodeDir& node);

 private:
  const TlsPolicy* Find(std::string_view destination, bool star) const;
  absl::Status ParseSetting(std::string_view key_value);
  std::vector<std::pair<std::string, TlsPolicy>> rules_;  // file order
  SecureSettings settings_;
};

struct Options {
  bool address_only = false;  // -x: no MX lookups
  std::string relay;          // -F: every message to this host
  int port = 25;              // -p
  std::string tls_file;       // -S
  std::string helo_name;      // -H, else mail.conf hostname
  std::string channel = "smtp";
  bool lmtp = false;  // the lmtp program: LHLO, no MX, UNIX sockets
  smtpclient::Timeouts timeouts;
  size_t bdat_chunk = smtpclient::kDefaultBdatChunk;  // -B bytes
};

absl::StatusOr<Options> ParseFlags(const NodeDir& node,
                                   const std::vector<std::string>& args,
                                   bool lmtp = false);

// Where a job goes: a name to look up, or a literal address.
struct Destination {
  std::string name;          // "example.net" or the IP of "[192.0.2.1]"
  bool literal = false;      // [ip]: no lookups
  bool no_mx = false;        // host:port or -x: A/AAAA only
  bool unix_socket = false;  // name is a socket path (LMTP)
  int port = 25;
};
// Parses "example.net", "[192.0.2.1]", "host:2525", "[::1]:2525", and
// "/path" (a UNIX socket).
absl::StatusOr<Destination> ParseDestination(std::string_view host,
                                             int default_port);

// How TLS is done with one server, and which policy said so
// (docs/transport-agents.md, "Secure transport").
struct TlsDecision {
  enum class Kind { kStatic, kDane, kStsEnforce, kStsTesting };
  Kind kind = Kind::kStatic;
  TlsPolicy policy;                          // kStatic
  std::vector<smtpclient::TlsaRecord> tlsa;  // kDane: usable records
  std::string tlsa_name;                     // kDane: "_25._tcp.mx..."
  tlspolicy::StsPolicy sts;                  // kSts*
  bool sts_mx_listed = true;                 // kSts*: the MX matches
  // What decided, for every diagnostic: "DANE (_25._tcp.mx.example.net)",
  // "MTA-STS enforce policy of example.net", "smtp-tls.conf verify",
  // "opportunistic TLS".
  std::string label;
  // Not empty: this server must not be tried (a failed TLSA lookup); the
  // diagnostic.
  std::string refuse;
};

// One server to try.
struct Server {
  std::string name;  // the host name (MX target), or the IP for literals
  std::string ip;
  int port = 25;
  TlsDecision tls;
};

// "mx1.example.net[192.0.2.1]:25", "[192.0.2.1]:25", or the socket path.
std::string RelayName(const Server& s);

// What DANE, MTA-STS and TLS reporting need besides the agent's options.
struct SecureTransport {
  std::unique_ptr<dns::SecureResolver> dnssec;  // null: no DANE
  std::string sts_cache_dir;                    // "" = no MTA-STS cache
  std::string tlsrpt_dir;                       // "" = no TLS reporting
  // MTA-STS policies fetched again in the background (smtp_secure.cc);
  // made when first needed.
  std::unique_ptr<tlspolicy::Refresher> sts_refresher;
};

class SmtpAgent : public ta::Handler {
 public:
  // `resolver` may be null: then only address lookups through the system
  // (getaddrinfo) and no MX.
  SmtpAgent(Options options, TlsPolicies tls,
            std::unique_ptr<dns::Resolver> resolver, Logger& log,
            SecureTransport secure = {});
  ~SmtpAgent() override;

  ta::Result Deliver(const ta::Delivery& d) override;
  std::vector<ta::Result> DeliverJob(
      const std::string& queue_id, const std::string& host,
      const mail::ControlFile& control,
      const std::vector<const mail::ControlRecipient*>& rcpts,
      std::string_view message) override;

 private:
  // The servers of a destination, in the order to try them; an error
  // result (permanent or temporary) when there are none.
  // `mx_secure`: set when the MX answer was DNSSEC-validated.
  absl::StatusOr<std::vector<Server>> Servers(const Destination& dest,
                                              ta::Result* failure,
                                              bool* mx_secure);
  absl::StatusOr<std::vector<std::string>> Addresses(const std::string& name);
  // smtp_secure.cc: the TLS decision for each server (DANE, MTA-STS, the
  // static policy). `mx_secure`: the MX answer was DNSSEC-validated.
  void DecideTls(const std::string& queue_id, const Destination& dest,
                 bool mx_secure, std::vector<Server>* servers);
  // The MTA-STS policy of a domain (cache, TXT id, fetch); nullopt = none.
  std::optional<tlspolicy::StsPolicy> StsPolicyFor(const std::string& queue_id,
                                                   const std::string& domain);
  // The id of the domain's `_mta-sts` TXT record; "" = none.
  std::string StsId(const std::string& queue_id, const std::string& domain);
  // Fetches, parses and caches the policy for `id`; nullopt when that
  // fails (logged; recorded for TLS reports with `report_failure`).
  // `refresh`: a cached policy holds meanwhile (the log says so).
  std::optional<tlspolicy::StsPolicy> FetchSts(const std::string& queue_id,
                                               const std::string& domain,
                                               const std::string& id,
                                               bool refresh,
                                               bool report_failure);
  // Connects to `s` and says EHLO, with STARTTLS as s.tls says. nullopt
  // and client_ set on success, else why not.
  std::optional<smtpclient::Outcome> Connect(const std::string& queue_id,
                                             const Destination& dest,
                                             const Server& s);
  // Records a session for TLS reporting (if on): `result` "" = success.
  void Report(const Destination& dest, const Server& s, std::string_view result,
              std::string_view detail);
  void Report(tlspolicy::TlsResult r);

  Options o_;
  TlsPolicies tls_;
  std::unique_ptr<dns::Resolver> resolver_;
  Logger& log_;
  SecureTransport secure_;
  // The open connection and whom it goes to.
  std::unique_ptr<smtpclient::Client> client_;
  std::string client_dest_;
  std::string client_relay_;
};

// The agent of a command line: flags, the TLS policy file, the resolver.
// `lmtp`: the lmtp program (LMTP over TCP or a UNIX socket).
absl::StatusOr<std::unique_ptr<ta::Handler>> MakeAgent(
    const ta::AgentStart& start, Logger& log, bool lmtp = false);

}  // namespace zm::smtp

#endif  // ZM_TA_SMTP_SMTP_H_
