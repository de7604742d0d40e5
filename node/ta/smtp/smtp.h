// smtp: the transport agent that sends mail out by SMTP
// (docs/transport-agents.md). `smtpx` is `smtp -x`.
//
//   smtp [-C DIR] [-x] [-F RELAY] [-p PORT] [-S TLSFILE] [-T SECS]
//        [-H HELONAME] [-c CHANNEL] [-s] [-8]
//
// For each job it finds the destination's servers (MX records in
// preference order, else the name's A/AAAA; `-x` skips MX; `-F` sends
// everything to one relay; `[ip]`, `host:port` and `[ip]:port` hosts are
// taken literally), connects, says EHLO, does STARTTLS as the TLS policy
// says, and sends all the job's recipients in one transaction. The
// connection stays open for the next job to the same destination.
#ifndef ZM_TA_SMTP_SMTP_H_
#define ZM_TA_SMTP_SMTP_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "node/common/log.h"
#include "node/common/node_dir.h"
#include "node/dns/resolver.h"
#include "node/ta/common/ta.h"
#include "node/ta/smtpclient/smtpclient.h"

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

class TlsPolicies {
 public:
  // InvalidArgument "file:line: what" for a bad line. A missing file is
  // an error too (the -S option names it).
  static absl::StatusOr<TlsPolicies> Load(const std::string& path);
  static absl::StatusOr<TlsPolicies> Parse(std::string_view text,
                                           std::string_view file);
  // The policy for a destination (the job's host without port, lower case).
  TlsPolicy For(std::string_view destination) const;

 private:
  std::vector<std::pair<std::string, TlsPolicy>> rules_;  // file order
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

// One server to try.
struct Server {
  std::string name;  // the host name (MX target), or the IP for literals
  std::string ip;
  int port = 25;
};

class SmtpAgent : public ta::Handler {
 public:
  // `resolver` may be null: then only address lookups through the system
  // (getaddrinfo) and no MX.
  SmtpAgent(Options options, TlsPolicies tls,
            std::unique_ptr<dns::Resolver> resolver, Logger& log);
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
  absl::StatusOr<std::vector<Server>> Servers(const Destination& dest,
                                              ta::Result* failure);
  absl::StatusOr<std::vector<std::string>> Addresses(const std::string& name);

  Options o_;
  TlsPolicies tls_;
  std::unique_ptr<dns::Resolver> resolver_;
  Logger& log_;
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
