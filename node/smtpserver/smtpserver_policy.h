// smtp-policy.src and its companion lists: the smtpserver's policy source.
//
//   # key            attribute value ...        [= _tag]
//   _full_rights     relaycustnet +  fulltrustnet +
//   [127.0.0.0]/8    = _full_rights
//   [ipv6:::1]/128   = _full_rights
//   [192.0.2.0]/24   relaycustnet +
//   .spam.example    rejectsource +  message "go away"
//
// Companion files add keys (one per line, first word) that include a tag:
// smtp-policy.relay (= _full_rights), smtp-policy.mx (= _relaytarget),
// smtp-policy.spam (= _bulk_mail), localnames (= _localnames), each with a
// `.manual` twin; all are optional. A tag smtp-policy.src does not define
// gets ZMailer's meaning (_full_rights: relaycustnet + fulltrustnet +,
// _localnames: localdomain +, _relaytarget: relaytarget +, _bulk_mail:
// rejectsource +).
//
// This cut acts on one thing: IP prefix keys (`[a.b.c.d]/len`,
// `[ipv6:...]/len`; longest prefix wins) whose attributes, directly or
// through `= _tag` macros (up to three levels), say `relaycustnet +` or
// `fulltrustnet +`: clients there may relay. Every other line is parsed
// and checked (unknown attributes, undefined tags and malformed keys are
// `file:line: what` errors) and kept for the policy issue. Built in, and
// overridable by an entry for the same prefix: 127.0.0.0/8 and ::1 trusted.
//
// A Policy is immutable after Load(); IsTrusted() is thread-safe.
#ifndef ZM_SMTPSERVER_SMTPSERVER_POLICY_H_
#define ZM_SMTPSERVER_SMTPSERVER_POLICY_H_

#include <array>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "node/common/node_dir.h"

namespace zm::smtpserver {

// The attribute names smtp-policy.src may use (ZMailer's set).
bool IsPolicyAttribute(std::string_view name);

class Policy {
 public:
  struct Network {
    bool v6 = false;
    std::array<unsigned char, 16> addr{};
    int len = 0;
    bool trusted = false;  // relaycustnet + or fulltrustnet +
    std::string source;    // "file:line" or "built-in"
  };

  // Only the built-in defaults.
  Policy();

  // Reads etc/smtp-policy.src (absent: the defaults only) and the
  // companion files present beside it.
  static absl::StatusOr<Policy> Load(const NodeDir& node);
  // The same from explicit text (tests); companions as (file name, text).
  static absl::StatusOr<Policy> Parse(
      std::string_view src_name, std::string_view src_text,
      const std::vector<std::pair<std::string, std::string>>& companions);

  // Whether a client at `ip` (textual IPv4 or IPv6) may relay.
  bool IsTrusted(std::string_view ip) const;

  const std::vector<Network>& networks() const { return networks_; }
  // Number of policy entries parsed (all kinds), for the log.
  size_t entry_count() const { return entry_count_; }

 private:
  std::vector<Network> networks_;
  size_t entry_count_ = 0;
};

// Parses "[a.b.c.d]/len", "[ipv6:x::y]/len" (also "[IPv6.x::y]"); no /len
// means the whole address.
bool ParseNetworkKey(std::string_view key, Policy::Network* out);

}  // namespace zm::smtpserver

#endif  // ZM_SMTPSERVER_SMTPSERVER_POLICY_H_
