// smtpserver.conf: ZMailer's smtpserver configuration, parsed and checked.
//
//   PARAM BindAddress [127.0.0.1]
//   PARAM BindPort    2525
//   PARAM maxsize     10000000
//   PARAM NoCHUNKING
//   PARAM help This is mx1 of Example Inc.
//   # HELO/EHLO-pattern  maxloadavg  style-flags | !refusal text
//   localhost            999         ftveR
//   *                    999         veR
//
// Every PARAM key ZMailer knows is accepted (docs/smtpserver.md lists
// them and which are acted on); an unknown key, a malformed value of a
// key that is used, or a malformed pattern line is a "file:line: what"
// error and the smtpserver refuses to start. Keys are case-insensitive.
// HELO/EHLO pattern lines are parsed and kept in file order; the policy
// checks (smtpserver_checks.h) match them and apply their style flags.
#ifndef ZM_SMTPSERVER_SMTPSERVER_CONFIG_H_
#define ZM_SMTPSERVER_SMTPSERVER_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string_view>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "node/common/node_dir.h"
#include "node/milter/client.h"
#include "node/smtpserver/smtpserver_proxy.h"

namespace zm::smtpserver {

struct HeloPattern {
  int line = 0;
  std::string pattern;  // shell glob on the HELO/EHLO name
  int max_load = 999;
  std::string flags;    // style flags ("veR"), or
  std::string refusal;  // the text after '!' ("" unless refusing)
};

struct ServerConfig {
  // Listening. Empty bind_addresses: all IPv4 addresses ("0.0.0.0").
  // Every address listens on each port that is not 0.
  std::vector<std::string> bind_addresses;  // plain IPs: "127.0.0.1", "::1"
  int bind_port = 25;           // BindPort: MX and relay (Listener::kSmtp)
  int submission_port = 0;      // BindSubmit / submission-port (587); 0 off
  int smtps_port = 0;           // BindSmtpS / listen-ssmtp (465); 0 off
  int listen_queue_size = 4096;  // ListenQueueSize (the kernel caps it)
  int tcp_rcv_buffer = 0;       // TcpRcvBufferSize (0: the kernel's)
  int tcp_xmit_buffer = 0;      // TcpXmitBufferSize
  std::string run_as_user;      // user (zmnode): setuid after binding as root

  // Limits.
  uint64_t max_size = 10000000;           // maxsize (0: no limit)
  uint64_t max_header_size = 256 * 1024;  // max-header-size (zmnode)
  uint64_t min_availspace_kib = 5000;     // min-availspace
  int max_same_ip_source = 10;            // MaxSameIpSource (0: no limit)
  int max_parallel_connections = 800;     // MaxParallelConnections
  int rcpt_limit = 10000;                 // RcptLimitCount (at least 100)
  int max_unknown_commands = 10;          // max-unknown-commands
  int idle_timeout_sec = 300;             // idle-timeout: per command
  int data_timeout_sec = 180;             // data-timeout: per DATA block
  int data_end_timeout_sec = 600;         // data-end-timeout: our reply
  int drain_timeout_sec = 30;             // drain-timeout (zmnode)
  // data-min-rate (zmnode): a DATA/BDAT transfer must bring at least this
  // many bytes per second, measured over each window of this many seconds
  // (a client trickling bytes to hold the session gets 421 4.4.2). 0: off.
  int data_min_rate = 500;
  int data_min_rate_window_sec = 30;
  // Client DNS (zmnode): the reverse name (PTR, forward-confirmed) and the
  // DNS blocklist lookups of smtp-policy's test-dns-rbl / rcpt-dns-rbl,
  // done before the greeting, bounded by client-dns-timeout; the session
  // goes on as "unknown" / not listed when DNS does not answer in time.
  bool reverse_dns = true;                  // no-reverse-dns turns it off
  int client_dns_timeout_sec = 5;           // client-dns-timeout
  std::vector<std::string> dnsbl_zones = {  // dnsbl-zones: what "+" means
      "zen.spamhaus.org"};
  // Ident (RFC 1413; ZMailer's identflg, the -i option of its
  // smtpserver): ask the client's port 113 who holds the connection, at
  // most ident_timeout_sec (concurrently with the client DNS), for the
  // Received: header (rcvd-ident) and the log. ident_port only for tests.
  bool ident = false;         // identflg
  int ident_timeout_sec = 5;  // ident-timeout (ZMailer's IDENT_TIMEOUT)
  int ident_port = 113;       // ident-port
  // PROXY protocol (smtpserver_proxy.h; zmnode): the listeners ("smtp",
  // "submission", "smtps") that expect a header from proxy-trusted peers.
  std::vector<std::string> proxy_listeners;  // proxy-protocol
  ProxyTrust proxy_trusted;                  // proxy-trusted (repeatable)
  int proxy_timeout_sec = 10;                // proxy-timeout

  // Texts.
  std::string hdr220;             // raw, with %H %V %T %% metatags
  std::vector<std::string> help;  // PARAM help lines, in order

  // Extension disablers (PARAM NoXXX).
  bool no_ehlo = false, no_pipelining = false, no_8bitmime = false,
       no_size = false, no_dsn = false, no_enhancedstatuscodes = false,
       no_smtputf8 = false, no_chunking = false, no_etrn = false,
       no_starttls = false, no_auth = false, no_deliverby = false;

  // Commands and session behaviour.
  bool vrfy = false, expn = false, debug_cmd = false;  // VRFYcmd EXPNcmd ...
  bool smtp_auth = false;                              // smtp-auth: offer AUTH
  bool auth_without_tls = false;    // AUTH-LOGIN-also-without-TLS
  bool msa_mode = false;            // MSA-mode on the BindPort listener too
  bool allow_source_route = false;  // allowsourceroute
  bool no_multiline_replies = false;
  bool normalise_bare_newlines = false;  // zmnode: else 550 5.6.0
  int deliverby_min_sec = 0;             // deliverby <seconds>
  std::string policydb;                  // policydb (kept as written)
  std::string report_auth_file;          // report-auth-file
  // Received: header comment parts.
  bool rcvd_ident = false, rcvd_whoson = false, rcvd_auth_user = false,
       rcvd_tls_mode = false, rcvd_tls_ccert = false;

  // TLS (STARTTLS and the smtps port). Paths as written ($MAILVAR ...);
  // empty cert/key: etc/tls/smtpserver-{cert,key}.pem when present.
  struct Tls {
    bool use_tls = false;  // use-tls (TLS is on whenever a cert is found)
    std::string cert_file, key_file, ca_file, ca_path;
    bool use_scache = false;  // tls-use-scache: server-side cache
    int scache_timeout_sec = 3600;
    int loglevel = 1;  // tls-loglevel: 0 = no handshake lines
    int ccert_vd = -1;  // tls-ccert-vd: client chain depth; -1 = OpenSSL's
    bool ask_cert = false;      // tls-ask-cert: request a client cert
    bool require_cert = false;  // tls-require-cert
    bool enforce_tls = false;   // tls-enforce-tls: no MAIL without TLS
    std::string cipher_list;    // tls-cipher-list (TLS 1.2); empty: AEAD
  } tls;

  // Fields other modules read (parsed by smtpserver_config.cc).
  std::string content_filter;           // contentfilter: program, "" = none
  int content_filter_timeout_sec = 60;  // zmnode: per message
  bool enable_router = false;           // enable-router: verify recipients
  int auth_failrate = 20;               // auth-failrate (per window)
  int ratelimit_auth_factor = 10;       // zmnode: AUTH users get N x limits
  int max_error_recipients = 3;         // max-error-recipients (then 421)
  int rate_slots = 8;                   // zmnode: rate-tracker window slots
  int rate_slot_seconds = 450;          // zmnode: seconds per slot
  int fleet_defer_over_limit_sec = 0;   // zmnode: publish a fleet DEFER (TTL)
  int etrn_cluster_wait_sec = 5;        // zmnode: cluster ETRN reply wait
  // AUTH backends (smtpserver_auth.h); paths may use $MAILVAR etc.
  std::string auth_pipe;           // SMTP-auth-pipe: program, "" = none
  int auth_pipe_timeout_sec = 10;  // smtp-auth-pipe-timeout (zmnode)
  std::string auth_file;           // smtp-auth-file (zmnode); "" =
                                   // etc/smtp-auth.passwd if present
  // PARAM milter lines, in file order (smtpserver_milter.h).
  std::vector<milter::Spec> milters;
  // tarpit <initial> <exponent> <toplimit> (seconds); initial 0 = off.
  double tarpit_initial = 0, tarpit_exponent = 0, tarpit_max = 0;

  // Mail authentication on the smtp listener (smtpserver_mailauth.h).
  struct MailAuth {
    std::string spf_threshold;  // spf-threshold: reject at MAIL at/below it
    bool spf_received = false;  // spf-received: add a Received-SPF header
    bool spf = false;           // spf (zmnode): evaluate and report SPF
    bool dkim_verify = false;   // dkim-verify (zmnode)
    bool dmarc = false;         // dmarc (zmnode): needs SPF and DKIM results
    std::string quarantine_folder;  // dmarc-quarantine folder NAME; ""=freeze
    std::string dkim_keys;  // dkim-keys (zmnode); "" = etc/dkim-keys if any
  } mailauth;

  // HELO/EHLO pattern lines, in file order (the policy checks match them).
  std::vector<HeloPattern> helo_patterns;
  std::vector<std::string> other_params;  // "key value" of the rest
};

// Parses `path`. NotFound if it does not exist (callers may then use the
// defaults); InvalidArgument "file:line: what" for anything wrong.
absl::StatusOr<ServerConfig> ParseServerConfig(const std::string& path);

// etc/smtpserver.conf of `node`; the defaults if the file is absent.
absl::StatusOr<ServerConfig> LoadServerConfig(const NodeDir& node);

// Expands hdr220's metatags: %H host name, %V version, %T the time (RFC
// 5322 date), %X language (empty), %I "+IDENT" when `identflg` (ident
// lookups are on), else nothing, %% a '%', and (zmnode) %R the client's
// reverse name ("unknown" when it has none).
std::string ExpandHdr220(const std::string& hdr220, const std::string& hostname,
                         int64_t now_sec, std::string_view client_name = {},
                         bool identflg = false);

// "zone1:zone2" (dnsbl-zones, test-dns-rbl values) -> the zones,
// lower-case; nullopt when one is not a DNS name.
std::optional<std::vector<std::string>> ParseDnsblZones(std::string_view v);

}  // namespace zm::smtpserver

#endif  // ZM_SMTPSERVER_SMTPSERVER_CONFIG_H_
