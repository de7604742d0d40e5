#include "node/smtpserver/smtpserver_settings.h"

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/config/config_file.h"

namespace zm::smtpserver {

void NodeDomains::Add(std::string_view name) {
  std::string n = ToLower(StripTrailingDots(Trim(name)));
  if (!n.empty()) names_.insert(std::move(n));
}

bool NodeDomains::IsLocal(std::string_view domain) const {
  return names_.count(std::string(domain)) > 0;
}

std::string Settings::GreetingText(int64_t now_sec,
                                   std::string_view client_name) const {
  if (server.hdr220.empty()) return StrCat(mail.hostname, " ESMTP zmnode");
  return ExpandHdr220(server.hdr220, mail.hostname, now_sec, client_name,
                      server.ident);
}

absl::StatusOr<std::shared_ptr<const Settings>> LoadSettings(
    const NodeDir& node) {
  auto s = std::make_shared<Settings>();
  auto server = LoadServerConfig(node);
  if (!server.ok()) return server.status();
  s->server = std::move(*server);
  auto mail = config::LoadMailConf(node);
  if (!mail.ok()) return mail.status();
  s->mail = std::move(*mail);
  auto policy = Policy::Load(node);
  if (!policy.ok()) return policy.status();
  s->policy = std::move(*policy);

  s->domains.Add(s->mail.hostname);
  s->domains.Add(s->mail.mydomain);
  s->domains.Add("localhost");
  std::string localnames = node.etc_file("localnames");
  if (fs::Exists(localnames)) {
    auto lines = config::ReadLines(localnames);
    if (!lines.ok()) return lines.status();
    for (const auto& l : *lines) {
      auto words = SplitWhitespace(l.text);
      if (!words.empty()) s->domains.Add(words[0]);
    }
  }

  const ServerConfig& c = s->server;
  smtp::SessionConfig& sc = s->session;
  sc.hostname = s->mail.hostname;
  sc.help = c.help;
  sc.max_message_size = c.max_size;
  sc.max_header_size = c.max_header_size;
  sc.rcpt_limit = static_cast<size_t>(c.rcpt_limit);
  sc.max_unknown_commands = c.max_unknown_commands;
  sc.ehlo = !c.no_ehlo;
  sc.pipelining = !c.no_pipelining;
  sc.eightbitmime = !c.no_8bitmime;
  sc.size = !c.no_size;
  sc.dsn = !c.no_dsn;
  sc.enhanced_status_codes = !c.no_enhancedstatuscodes;
  sc.smtputf8 = !c.no_smtputf8;
  sc.chunking = !c.no_chunking;
  sc.etrn = !c.no_etrn;
  sc.deliverby = !c.no_deliverby;
  sc.deliverby_min_sec = static_cast<uint32_t>(c.deliverby_min_sec);
  // The driver turns these on when it has a certificate / a backend.
  sc.starttls = false;
  sc.auth = false;
  sc.auth_without_tls = c.auth_without_tls;
  sc.vrfy = c.vrfy;
  sc.expn = c.expn;
  sc.strict_dot = true;
  sc.bare_newline_normalise = c.normalise_bare_newlines;
  sc.require_domain = true;
  sc.tarpit_initial_ms = static_cast<uint32_t>(c.tarpit_initial * 1000);
  sc.tarpit_exponent = c.tarpit_exponent;
  sc.tarpit_max_ms = static_cast<uint32_t>(c.tarpit_max * 1000);
  sc.rcvd_ident = c.rcvd_ident;
  sc.rcvd_auth_user = c.rcvd_auth_user;
  sc.rcvd_tls_mode = c.rcvd_tls_mode;
  sc.rcvd_tls_ccert = c.rcvd_tls_ccert;
  sc.msa_mode = c.msa_mode;
  sc.no_multiline_replies = c.no_multiline_replies;
  return std::shared_ptr<const Settings>(std::move(s));
}

}  // namespace zm::smtpserver
