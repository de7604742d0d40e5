// zm::smtpserver::Settings: everything a session needs from the node's
// configuration, loaded at once into one immutable snapshot.
//
// The daemon holds a std::shared_ptr<const Settings>; a reload (SIGHUP)
// builds a new snapshot and swaps the pointer, so sessions already running
// keep the one they started with. `sendmail -bs` loads the same snapshot.
//
//   auto s = zm::smtpserver::LoadSettings(node);   // file:line errors
//   zm::smtp::Session session((*s)->session, client);
#ifndef ZM_SMTPSERVER_SMTPSERVER_SETTINGS_H_
#define ZM_SMTPSERVER_SMTPSERVER_SETTINGS_H_

#include <memory>
#include <set>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "node/common/node_dir.h"
#include "node/config/mail_conf.h"
#include "node/smtp/basic_checks.h"
#include "node/smtp/session.h"
#include "node/smtpserver/smtpserver_config.h"
#include "node/smtpserver/smtpserver_policy.h"

namespace zm::smtpserver {

// Our own domains: mail.conf hostname and mydomain, "localhost", and the
// names in etc/localnames (first word of each line). Address literals of
// the listening address are recognised per session by smtp::Session.
class NodeDomains : public smtp::LocalDomains {
 public:
  void Add(std::string_view name);
  bool IsLocal(std::string_view domain) const override;
  const std::set<std::string>& names() const { return names_; }

 private:
  std::set<std::string> names_;
};

struct Settings {
  ServerConfig server;
  config::MailConf mail;
  Policy policy;
  NodeDomains domains;
  smtp::SessionConfig session;  // for network clients

  // The 220 text at `now_sec` (hdr220 with its metatags expanded; %R is
  // `client_name`, "unknown" when empty).
  std::string GreetingText(int64_t now_sec,
                           std::string_view client_name = {}) const;
};

// Reads etc/smtpserver.conf, etc/mail.conf, etc/localnames and the policy
// files. InvalidArgument "file:line: what" for a bad line.
absl::StatusOr<std::shared_ptr<const Settings>> LoadSettings(
    const NodeDir& node);

}  // namespace zm::smtpserver

#endif  // ZM_SMTPSERVER_SMTPSERVER_SETTINGS_H_
