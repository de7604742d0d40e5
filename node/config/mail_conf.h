// mail.conf: the node's identity as ZMailer's router knows it.
//
//   hostname=mx1.example.net     # this host's name (HELO, Received:, bounces)
//   mydomain=example.net         # the domain for unqualified addresses
//   orgdomain=example.net        # the organisation's domain
//
// `name=value` lines, '#' comments; values may be quoted. An absent
// hostname falls back to the system's host name.
#ifndef ZM_CONFIG_MAIL_CONF_H_
#define ZM_CONFIG_MAIL_CONF_H_

#include <string>

#include "absl/status/statusor.h"
#include "node/common/node_dir.h"

namespace zm::config {

struct MailConf {
  std::string hostname;
  std::string mydomain;
  std::string orgdomain;
};

absl::StatusOr<MailConf> ParseMailConf(const std::string& path);
inline absl::StatusOr<MailConf> LoadMailConf(const NodeDir& node) {
  return ParseMailConf(node.etc_file("mail.conf"));
}

}  // namespace zm::config

#endif  // ZM_CONFIG_MAIL_CONF_H_
