#include "node/smtpserver/smtpserver_config.h"

#include <arpa/inet.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <functional>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/config/config_file.h"

namespace zm::smtpserver {
namespace {

constexpr std::string_view kVersion = "0.1";

enum class Kind {
  kFlag,    // no value
  kSwitch,  // no value (on), or 0/1, yes/no, on/off
  kNumber,  // non-negative integer, checked against bounds
  kText,    // free text (may be empty)
  kCustom,  // parsed by its own branch below
  kAny,     // known, for a later issue: value kept, not checked
};

struct Key {
  std::string_view name;
  Kind kind;
  int64_t min = 0;
  int64_t max = 0;
};

// Every PARAM key ZMailer's smtpserver knows (the seed's smtpserver.conf
// and ZMAILER-REFERENCE.md), plus the zmnode keys marked so.
constexpr Key kKeys[] = {
    // Listening.
    {"BindAddress", Kind::kText},
    {"BindPort", Kind::kNumber, 1, 65535},
    {"BindSubmit", Kind::kNumber, 0, 65535},
    {"submission-port", Kind::kNumber, 0, 65535},  // zmnode alias
    {"BindSmtpS", Kind::kNumber, 0, 65535},
    {"listen-ssmtp", Kind::kCustom},        // no value: 465; or a port
    {"BindSmtp", Kind::kNumber, 1, 65535},  // same as BindPort
    {"ListenQueueSize", Kind::kNumber, 1, 65535},
    {"TcpRcvBufferSize", Kind::kNumber, 0, 64 << 20},
    {"TcpXmitBufferSize", Kind::kNumber, 0, 64 << 20},
    {"user", Kind::kText},  // zmnode
    // Limits.
    {"maxsize", Kind::kNumber, 0, int64_t{1} << 40},
    {"max-header-size", Kind::kNumber, 1024, int64_t{1} << 30},  // zmnode
    {"min-availspace", Kind::kNumber, 0, int64_t{1} << 40},
    {"max-error-recipients", Kind::kNumber, 0, 1000000},
    {"MaxSameIpSource", Kind::kNumber, 0, 1000000},
    {"MaxParallelConnections", Kind::kNumber, 1, 1000000},
    {"RcptLimitCount", Kind::kNumber, 100, 10000000},
    {"max-unknown-commands", Kind::kNumber, 0, 1000000},
    {"idle-timeout", Kind::kNumber, 1, 86400},      // zmnode, seconds
    {"data-timeout", Kind::kNumber, 1, 86400},      // zmnode, seconds
    {"data-end-timeout", Kind::kNumber, 1, 86400},  // zmnode, seconds
    {"drain-timeout", Kind::kNumber, 0, 86400},     // zmnode, seconds
    {"proxy-protocol", Kind::kCustom},              // zmnode: listeners
    {"proxy-trusted", Kind::kCustom},               // zmnode: networks
    {"proxy-timeout", Kind::kNumber, 1, 300},       // zmnode, seconds
    {"tarpit", Kind::kCustom},
    {"data-min-rate", Kind::kCustom},  // zmnode: bytes/s [window]
    // Client DNS (zmnode): reverse name, DNS blocklists.
    {"no-reverse-dns", Kind::kFlag},
    {"client-dns-timeout", Kind::kNumber, 1, 120},  // seconds
    {"dnsbl-zones", Kind::kText},                   // what "+" means
    // Ident (RFC 1413): ZMailer's identflg, its smtpserver's -i option.
    {"identflg", Kind::kFlag},
    {"ident-timeout", Kind::kNumber, 1, 60},  // zmnode, seconds
    {"ident-port", Kind::kNumber, 1, 65535},  // zmnode: 113 (tests)
    {"deliverby", Kind::kCustom},
    // Texts.
    {"hdr220", Kind::kText},
    {"help", Kind::kText},
    // Extension disablers.
    {"NoEHLO", Kind::kFlag},
    {"NoPIPELINING", Kind::kFlag},
    {"No8BITMIME", Kind::kFlag},
    {"No8BITIME", Kind::kFlag},  // the spelling in ZMailer's sample file
    {"NoSIZE", Kind::kFlag},
    {"NoDSN", Kind::kFlag},
    {"NoENHANCEDSTATUSCODES", Kind::kFlag},
    {"NoSMTPUTF8", Kind::kFlag},
    {"NoCHUNKING", Kind::kFlag},
    {"NoETRN", Kind::kFlag},
    {"NoSTARTTLS", Kind::kFlag},
    {"NoAUTH", Kind::kFlag},
    {"NoDELIVERBY", Kind::kFlag},
    {"no-multiline-replies", Kind::kFlag},
    {"normalise-bare-newlines", Kind::kFlag},  // zmnode
    // Commands and helpers.
    {"DEBUGcmd", Kind::kFlag},
    {"EXPNcmd", Kind::kFlag},
    {"VRFYcmd", Kind::kFlag},
    {"enable-router", Kind::kFlag},
    {"contentfilter", Kind::kText},
    {"contentfilter-timeout", Kind::kNumber, 1, 3600},  // zmnode
    {"milter", Kind::kText},                            // zmnode
    {"policydb", Kind::kText},
    {"allowsourceroute", Kind::kFlag},
    {"MSA-mode", Kind::kFlag},
    {"smtp-auth", Kind::kFlag},
    {"SMTP-auth-pipe", Kind::kText},
    {"smtp-auth-pipe-timeout", Kind::kNumber, 1, 600},  // zmnode
    {"smtp-auth-file", Kind::kText},                    // zmnode
    {"AUTH-LOGIN-also-without-TLS", Kind::kFlag},
    {"auth-failrate", Kind::kNumber, 0, 1000000},
    {"ratelimit-auth-factor", Kind::kNumber, 1, 1000},    // zmnode
    {"rate-slots", Kind::kNumber, 1, 1000},               // zmnode
    {"rate-slot-seconds", Kind::kNumber, 1, 86400},       // zmnode
    {"fleet-defer-over-limit", Kind::kNumber, 0, 86400},  // zmnode, seconds
    {"etrn-cluster-wait", Kind::kNumber, 0, 60},          // zmnode, seconds
    {"report-auth-file", Kind::kText},
    {"etrn-cluster", Kind::kAny},
    {"tracking-cluster", Kind::kAny},
    {"spf-received", Kind::kAny},
    {"spf-threshold", Kind::kCustom},
    {"spf", Kind::kSwitch},               // zmnode
    {"dkim-verify", Kind::kSwitch},       // zmnode
    {"dmarc", Kind::kSwitch},             // zmnode
    {"dmarc-quarantine", Kind::kCustom},  // zmnode: freeze | folder NAME
    {"dkim-keys", Kind::kText},           // zmnode
    // TLS.
    {"use-tls", Kind::kFlag},
    {"tls-CAfile", Kind::kText},
    {"tls-CApath", Kind::kText},
    {"tls-cert-file", Kind::kText},
    {"tls-key-file", Kind::kText},
    {"tls-use-scache", Kind::kSwitch},
    {"tls-scache-timeout", Kind::kNumber, 0, 86400 * 7},
    {"tls-loglevel", Kind::kNumber, 0, 4},
    {"tls-ccert-vd", Kind::kNumber, 0, 100},
    {"tls-ask-cert", Kind::kSwitch},
    {"tls-require-cert", Kind::kSwitch},
    {"tls-enforce-tls", Kind::kSwitch},
    {"tls-cipher-list", Kind::kText},
    // Received: header comment elements.
    {"rcvd-ident", Kind::kFlag},
    {"rcvd-whoson", Kind::kFlag},
    {"rcvd-auth-user", Kind::kFlag},
    {"rcvd-tls-mode", Kind::kFlag},
    {"rcvd-tls-ccert", Kind::kFlag},
};

const Key* FindKey(std::string_view name) {
  for (const Key& k : kKeys) {
    if (EqualsIgnoreCase(k.name, name)) return &k;
  }
  return nullptr;
}

// "[1.2.3.4]", "[IPv6.::1]", "[IPv6:::1]", "[::1]" -> plain address.
bool ParseBindAddress(std::string_view v, std::string* out) {
  if (v.size() < 3 || v.front() != '[' || v.back() != ']') return false;
  std::string_view a = v.substr(1, v.size() - 2);
  if (StartsWithIgnoreCase(a, "IPv6.") || StartsWithIgnoreCase(a, "IPv6:")) {
    a.remove_prefix(5);
  }
  std::string s(a);
  unsigned char buf[16];
  char text[INET6_ADDRSTRLEN];
  int family = ::inet_pton(AF_INET, s.c_str(), buf) == 1    ? AF_INET
               : ::inet_pton(AF_INET6, s.c_str(), buf) == 1 ? AF_INET6
                                                            : 0;
  if (family == 0 || !::inet_ntop(family, buf, text, sizeof text)) return false;
  *out = text;  // canonical form: "0::0" -> "::"
  return true;
}

}  // namespace

absl::StatusOr<ServerConfig> ParseServerConfig(const std::string& path) {
  auto lines = config::ReadLines(path);
  if (!lines.ok()) return lines.status();
  ServerConfig c;
  int proxy_line = 0;  // where proxy-protocol was set
  for (const config::Line& l : *lines) {
    std::string_view text = Trim(l.text);
    auto err = [&](std::string_view what) {
      return config::Error(path, l.number, what);
    };
    std::string_view first = text.substr(0, text.find_first_of(" \t"));
    if (EqualsIgnoreCase(first, "PARAM")) {
      std::string_view rest = Trim(text.substr(first.size()));
      std::string_view key = rest.substr(0, rest.find_first_of(" \t"));
      std::string_view value = Trim(rest.substr(key.size()));
      if (key.empty()) return err("PARAM needs a key");
      const Key* k = FindKey(key);
      if (!k) return err(StrCat("unknown PARAM '", key, "'"));
      int64_t n = 0;
      switch (k->kind) {
        case Kind::kFlag:
          if (!value.empty()) return err(StrCat(k->name, " takes no value"));
          break;
        case Kind::kNumber:
          if (!ParseNumber(value, &n) || n < k->min || n > k->max) {
            return err(StrCat(k->name, " needs a number from ", k->min, " to ",
                              k->max, ", not '", value, "'"));
          }
          break;
        case Kind::kSwitch:
          if (value.empty() || value == "1" || EqualsIgnoreCase(value, "yes") ||
              EqualsIgnoreCase(value, "on")) {
            n = 1;
          } else if (value == "0" || EqualsIgnoreCase(value, "no") ||
                     EqualsIgnoreCase(value, "off")) {
            n = 0;
          } else {
            return err(StrCat(k->name, " takes 0 or 1, not '", value, "'"));
          }
          break;
        case Kind::kText:
        case Kind::kCustom:
        case Kind::kAny:
          break;
      }
      auto need_text = [&]() -> absl::Status {
        if (value.empty()) return err(StrCat(k->name, " needs a value"));
        return absl::OkStatus();
      };
      std::string_view name = k->name;
      if (name == "BindAddress") {
        std::string addr;
        if (!ParseBindAddress(value, &addr)) {
          return err(StrCat("BindAddress needs [a.b.c.d] or [IPv6.addr], not '",
                            value, "'"));
        }
        c.bind_addresses.push_back(addr);
      } else if (name == "BindPort") {
        c.bind_port = static_cast<int>(n);
      } else if (name == "BindSmtp") {
        c.bind_port = static_cast<int>(n);
      } else if (name == "BindSubmit" || name == "submission-port") {
        c.submission_port = static_cast<int>(n);
      } else if (name == "BindSmtpS") {
        c.smtps_port = static_cast<int>(n);
      } else if (name == "listen-ssmtp") {
        c.smtps_port = 465;
        if (!value.empty() && (!ParseNumber(value, &c.smtps_port) ||
                               c.smtps_port < 0 || c.smtps_port > 65535)) {
          return err(StrCat("listen-ssmtp takes no value or a port, not '",
                            value, "'"));
        }
      } else if (name == "TcpRcvBufferSize") {
        c.tcp_rcv_buffer = static_cast<int>(n);
      } else if (name == "TcpXmitBufferSize") {
        c.tcp_xmit_buffer = static_cast<int>(n);
      } else if (name == "user") {
        if (auto st = need_text(); !st.ok()) return st;
        c.run_as_user = std::string(value);
      } else if (name == "max-error-recipients") {
        c.max_error_recipients = static_cast<int>(n);
      } else if (name == "data-timeout") {
        c.data_timeout_sec = static_cast<int>(n);
      } else if (name == "data-end-timeout") {
        c.data_end_timeout_sec = static_cast<int>(n);
      } else if (name == "tarpit") {
        // tarpit <initial> <exponent> [<toplimit>], seconds.
        auto w = SplitWhitespace(value);
        double v[3] = {0, 0, 300};
        bool ok = w.size() == 2 || w.size() == 3;
        for (size_t i = 0; ok && i < w.size(); ++i) {
          std::string t(w[i]);
          char* end = nullptr;
          v[i] = std::strtod(t.c_str(), &end);
          ok = end && *end == '\0' && !t.empty() && v[i] >= 0 && v[i] <= 3600;
        }
        if (!ok) {
          return err(StrCat("tarpit needs <initial> <exponent> [<toplimit>] ",
                            "(seconds, 0 to 3600), not '", value, "'"));
        }
        c.tarpit_initial = v[0];
        c.tarpit_exponent = v[1];
        c.tarpit_max = std::max(v[2], v[0]);
      } else if (name == "data-min-rate") {
        // data-min-rate <bytes per second> [<window seconds>]; 0 = off.
        auto w = SplitWhitespace(value);
        int64_t rate = 0, window = c.data_min_rate_window_sec;
        bool ok = (w.size() == 1 || w.size() == 2) &&
                  ParseNumber(w[0], &rate) && rate >= 0 && rate <= (1 << 30);
        if (ok && w.size() == 2) {
          ok = ParseNumber(w[1], &window) && window >= 1 && window <= 3600;
        }
        if (!ok) {
          return err(StrCat("data-min-rate needs <bytes per second> ",
                            "[<window seconds, 1 to 3600>], not '", value,
                            "'"));
        }
        c.data_min_rate = static_cast<int>(rate);
        c.data_min_rate_window_sec = static_cast<int>(window);
      } else if (name == "no-reverse-dns") {
        c.reverse_dns = false;
      } else if (name == "client-dns-timeout") {
        c.client_dns_timeout_sec = static_cast<int>(n);
      } else if (name == "identflg") {
        c.ident = true;
      } else if (name == "ident-timeout") {
        c.ident_timeout_sec = static_cast<int>(n);
      } else if (name == "ident-port") {
        c.ident_port = static_cast<int>(n);
      } else if (name == "dnsbl-zones") {
        if (auto st = need_text(); !st.ok()) return st;
        auto zones = ParseDnsblZones(value);
        if (!zones) {
          return err(StrCat("dnsbl-zones needs zone[:zone...] (DNS names), ",
                            "not '", value, "'"));
        }
        c.dnsbl_zones = *zones;
      } else if (name == "deliverby") {
        if (!value.empty() && (!ParseNumber(value, &c.deliverby_min_sec) ||
                               c.deliverby_min_sec < 0)) {
          return err(
              StrCat("deliverby takes a number of seconds, not '", value, "'"));
        }
      } else if (name == "no-multiline-replies") {
        c.no_multiline_replies = true;
      } else if (name == "normalise-bare-newlines") {
        c.normalise_bare_newlines = true;
      } else if (name == "DEBUGcmd") {
        c.debug_cmd = true;
      } else if (name == "EXPNcmd") {
        c.expn = true;
      } else if (name == "VRFYcmd") {
        c.vrfy = true;
      } else if (name == "enable-router") {
        c.enable_router = true;
      } else if (name == "contentfilter") {
        if (auto st = need_text(); !st.ok()) return st;
        c.content_filter = std::string(value);
      } else if (name == "milter") {
        auto spec = milter::ParseSpec(value);
        if (!spec.ok()) return err(Message(spec.status()));
        for (const milter::Spec& m : c.milters) {
          if (m.name == spec->name) {
            return err(StrCat("milter '", m.name, "' is defined twice"));
          }
        }
        c.milters.push_back(*std::move(spec));
      } else if (name == "contentfilter-timeout") {
        c.content_filter_timeout_sec = static_cast<int>(n);
      } else if (name == "policydb") {
        if (auto st = need_text(); !st.ok()) return st;
        c.policydb = std::string(value);
      } else if (name == "allowsourceroute") {
        c.allow_source_route = true;
      } else if (name == "MSA-mode") {
        c.msa_mode = true;
      } else if (name == "smtp-auth") {
        c.smtp_auth = true;
      } else if (name == "AUTH-LOGIN-also-without-TLS") {
        c.auth_without_tls = true;
      } else if (name == "auth-failrate") {
        c.auth_failrate = static_cast<int>(n);
      } else if (name == "ratelimit-auth-factor") {
        c.ratelimit_auth_factor = static_cast<int>(n);
      } else if (name == "rate-slots") {
        c.rate_slots = static_cast<int>(n);
      } else if (name == "rate-slot-seconds") {
        c.rate_slot_seconds = static_cast<int>(n);
      } else if (name == "fleet-defer-over-limit") {
        c.fleet_defer_over_limit_sec = static_cast<int>(n);
      } else if (name == "etrn-cluster-wait") {
        c.etrn_cluster_wait_sec = static_cast<int>(n);
      } else if (name == "report-auth-file") {
        if (auto st = need_text(); !st.ok()) return st;
        c.report_auth_file = std::string(value);
      } else if (name == "spf-threshold") {
        static constexpr std::string_view kLevels[] = {
            "fail", "softfail", "none", "neutral", "pass"};
        bool ok = false;
        for (auto l : kLevels) ok = ok || EqualsIgnoreCase(value, l);
        if (!ok) {
          return err(StrCat("spf-threshold takes fail, softfail, none, ",
                            "neutral or pass, not '", value, "'"));
        }
        c.mailauth.spf_threshold = ToLower(value);
      } else if (name == "spf-received") {
        c.mailauth.spf_received = true;
      } else if (name == "spf") {
        c.mailauth.spf = n != 0;
      } else if (name == "dkim-verify") {
        c.mailauth.dkim_verify = n != 0;
      } else if (name == "dmarc") {
        c.mailauth.dmarc = n != 0;
      } else if (name == "dmarc-quarantine") {
        auto w = SplitWhitespace(value);
        if (w.size() == 1 && w[0] == "freeze") {
          c.mailauth.quarantine_folder.clear();
        } else if (w.size() == 2 && w[0] == "folder" &&
                   w[1].find_first_not_of("abcdefghijklmnopqrstuvwxyz"
                                          "0123456789-") ==
                       std::string_view::npos) {
          c.mailauth.quarantine_folder = std::string(w[1]);
        } else {
          return err(StrCat("dmarc-quarantine takes 'freeze' or 'folder ",
                            "NAME' (NAME of a-z, 0-9, '-'), not '", value,
                            "'"));
        }
      } else if (name == "dkim-keys") {
        if (auto st = need_text(); !st.ok()) return st;
        c.mailauth.dkim_keys = std::string(value);
      } else if (name == "use-tls") {
        c.tls.use_tls = true;
      } else if (name == "tls-CAfile") {
        if (auto st = need_text(); !st.ok()) return st;
        c.tls.ca_file = std::string(value);
      } else if (name == "tls-CApath") {
        if (auto st = need_text(); !st.ok()) return st;
        c.tls.ca_path = std::string(value);
      } else if (name == "tls-cert-file") {
        if (auto st = need_text(); !st.ok()) return st;
        c.tls.cert_file = std::string(value);
      } else if (name == "tls-key-file") {
        if (auto st = need_text(); !st.ok()) return st;
        c.tls.key_file = std::string(value);
      } else if (name == "tls-use-scache") {
        c.tls.use_scache = n != 0;
      } else if (name == "tls-scache-timeout") {
        c.tls.scache_timeout_sec = static_cast<int>(n);
      } else if (name == "tls-loglevel") {
        c.tls.loglevel = static_cast<int>(n);
      } else if (name == "tls-ccert-vd") {
        c.tls.ccert_vd = static_cast<int>(n);
      } else if (name == "tls-ask-cert") {
        c.tls.ask_cert = n != 0;
      } else if (name == "tls-require-cert") {
        c.tls.require_cert = n != 0;
      } else if (name == "tls-enforce-tls") {
        c.tls.enforce_tls = n != 0;
      } else if (name == "tls-cipher-list") {
        if (auto st = need_text(); !st.ok()) return st;
        c.tls.cipher_list = std::string(value);
      } else if (name == "rcvd-ident") {
        c.rcvd_ident = true;
      } else if (name == "rcvd-whoson") {
        c.rcvd_whoson = true;
      } else if (name == "rcvd-auth-user") {
        c.rcvd_auth_user = true;
      } else if (name == "rcvd-tls-mode") {
        c.rcvd_tls_mode = true;
      } else if (name == "rcvd-tls-ccert") {
        c.rcvd_tls_ccert = true;
      } else if (name == "ListenQueueSize") {
        c.listen_queue_size = static_cast<int>(n);
      } else if (name == "maxsize") {
        c.max_size = static_cast<uint64_t>(n);
      } else if (name == "max-header-size") {
        c.max_header_size = static_cast<uint64_t>(n);
      } else if (name == "min-availspace") {
        c.min_availspace_kib = static_cast<uint64_t>(n);
      } else if (name == "MaxSameIpSource") {
        c.max_same_ip_source = static_cast<int>(n);
      } else if (name == "MaxParallelConnections") {
        c.max_parallel_connections = static_cast<int>(n);
      } else if (name == "RcptLimitCount") {
        c.rcpt_limit = static_cast<int>(n);
      } else if (name == "max-unknown-commands") {
        c.max_unknown_commands = static_cast<int>(n);
      } else if (name == "idle-timeout") {
        c.idle_timeout_sec = static_cast<int>(n);
      } else if (name == "drain-timeout") {
        c.drain_timeout_sec = static_cast<int>(n);
      } else if (name == "proxy-protocol") {
        if (auto st = need_text(); !st.ok()) return st;
        for (std::string_view w : SplitWhitespace(value)) {
          if (w != "smtp" && w != "submission" && w != "smtps") {
            return err(StrCat("proxy-protocol takes smtp, submission, smtps, "
                              "not '", w, "'"));
          }
          c.proxy_listeners.emplace_back(w);
        }
        proxy_line = l.number;
      } else if (name == "proxy-trusted") {
        if (auto st = need_text(); !st.ok()) return st;
        for (std::string_view w : SplitWhitespace(value)) {
          if (auto bad = c.proxy_trusted.Add(w); !bad.ok()) {
            return err(StrCat("proxy-trusted: ", Message(bad)));
          }
        }
      } else if (name == "proxy-timeout") {
        c.proxy_timeout_sec = static_cast<int>(n);
      } else if (name == "hdr220") {
        if (value.empty()) return err("hdr220 needs a text");
        c.hdr220 = std::string(value);
      } else if (name == "SMTP-auth-pipe") {
        if (value.empty()) return err("SMTP-auth-pipe needs a program path");
        c.auth_pipe = std::string(value);
      } else if (name == "smtp-auth-pipe-timeout") {
        c.auth_pipe_timeout_sec = static_cast<int>(n);
      } else if (name == "smtp-auth-file") {
        if (value.empty()) return err("smtp-auth-file needs a file path");
        c.auth_file = std::string(value);
      } else if (name == "help") {
        c.help.emplace_back(value);
      } else if (name == "NoEHLO") {
        c.no_ehlo = true;
      } else if (name == "NoPIPELINING") {
        c.no_pipelining = true;
      } else if (name == "No8BITMIME" || name == "No8BITIME") {
        c.no_8bitmime = true;
      } else if (name == "NoSIZE") {
        c.no_size = true;
      } else if (name == "NoDSN") {
        c.no_dsn = true;
      } else if (name == "NoENHANCEDSTATUSCODES") {
        c.no_enhancedstatuscodes = true;
      } else if (name == "NoSMTPUTF8") {
        c.no_smtputf8 = true;
      } else if (name == "NoCHUNKING") {
        c.no_chunking = true;
      } else if (name == "NoETRN") {
        c.no_etrn = true;
      } else if (name == "NoSTARTTLS") {
        c.no_starttls = true;
      } else if (name == "NoAUTH") {
        c.no_auth = true;
      } else if (name == "NoDELIVERBY") {
        c.no_deliverby = true;
      } else {
        c.other_params.push_back(value.empty() ? std::string(name)
                                               : StrCat(name, " ", value));
      }
      continue;
    }
    // A HELO/EHLO pattern line: pattern maxload (flags | !refusal text).
    HeloPattern p;
    p.line = l.number;
    p.pattern = std::string(first);
    std::string_view rest = Trim(text.substr(first.size()));
    std::string_view load = rest.substr(0, rest.find_first_of(" \t"));
    if (load.empty() || !ParseNumber(load, &p.max_load) || p.max_load < 0) {
      return err(StrCat("HELO pattern '", first,
                        "' needs a maximum load average (a number), then style "
                        "flags or !refusal text"));
    }
    std::string_view tail = Trim(rest.substr(load.size()));
    if (!tail.empty() && tail.front() == '!') {
      p.refusal = std::string(Trim(tail.substr(1)));
    } else {
      if (tail.find_first_of(" \t") != std::string_view::npos) {
        return err(
            StrCat("style flags '", tail, "' must be one word of letters"));
      }
      for (char ch : tail) {
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))) {
          return err(StrCat("bad style flag '", std::string(1, ch), "'"));
        }
      }
      p.flags = std::string(tail);
    }
    c.helo_patterns.push_back(std::move(p));
  }
  if (proxy_line > 0 && c.proxy_trusted.empty()) {
    return config::Error(path, proxy_line,
                         "proxy-protocol needs proxy-trusted (the networks "
                         "of the proxies that may send the header)");
  }
  return c;
}

absl::StatusOr<ServerConfig> LoadServerConfig(const NodeDir& node) {
  std::string path = node.etc_file("smtpserver.conf");
  if (!fs::Exists(path)) return ServerConfig();
  return ParseServerConfig(path);
}

std::optional<std::vector<std::string>> ParseDnsblZones(std::string_view v) {
  std::vector<std::string> out;
  for (std::string_view z : Split(v, ':')) {
    z = StripTrailingDots(Trim(z));
    if (z.empty() || z.size() > 200 ||
        z.find_first_not_of("abcdefghijklmnopqrstuvwxyz"
                            "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") !=
            std::string_view::npos) {
      return std::nullopt;
    }
    out.push_back(ToLower(z));
  }
  if (out.empty()) return std::nullopt;
  return out;
}

std::string ExpandHdr220(const std::string& hdr220, const std::string& hostname,
                         int64_t now_sec, std::string_view client_name,
                         bool identflg) {
  std::string out;
  for (size_t i = 0; i < hdr220.size(); ++i) {
    char c = hdr220[i];
    if (c != '%' || i + 1 >= hdr220.size()) {
      out += c;
      continue;
    }
    char m = hdr220[++i];
    switch (m) {
      case '%':
        out += '%';
        break;
      case 'H':
        out += hostname;
        break;
      case 'V':
        StrAppend(&out, "zmnode ", kVersion);
        break;
      case 'T': {
        time_t t = static_cast<time_t>(now_sec);
        struct tm tm;
        ::localtime_r(&t, &tm);
        char buf[64];
        size_t n = ::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S %z", &tm);
        out.append(buf, n);
        break;
      }
      case 'R':  // zmnode: the client's reverse DNS name
        out += client_name.empty() ? std::string_view("unknown") : client_name;
        break;
      case 'I':  // as ZMailer: "+IDENT" when ident lookups are on
        if (identflg) out += "+IDENT";
        break;
      case 'X':
        break;
      default:
        out += '%';
        out += m;
    }
  }
  return out;
}

}  // namespace zm::smtpserver
