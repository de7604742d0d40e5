#include "node/smtp/basic_checks.h"

#include "node/common/strings.h"

namespace zm::smtp {
namespace {

std::string AddressLiteral(std::string_view addr) {
  if (addr.find(':') != std::string_view::npos)
    return StrCat("[ipv6:", ToLower(addr), "]");
  return StrCat("[", addr, "]");
}

}  // namespace

bool RecipientAllowed(const Session& session, const LocalDomains& domains,
                      std::string_view address) {
  std::string domain = AddressDomain(address);
  if (domain.empty()) return true;  // <postmaster> or a local user name
  if (session.relay_allowed()) return true;
  const std::string& local = session.client().local_addr;
  if (!local.empty() && domain == AddressLiteral(local)) return true;
  return domains.IsLocal(domain);
}

Reply RelayDeniedReply(std::string_view address) {
  return MakeReply(ReplyId::kRelayDenied,
                   StrCat("<", address, ">: Relaying denied"));
}

Verdict BasicChecks::Decide(const Session& session, const Check& check) {
  switch (check.kind) {
    case CheckKind::kRcptTo:
      if (RecipientAllowed(session, domains_, check.arg)) {
        return Verdict::Accept();
      }
      return Verdict::Reject(RelayDeniedReply(check.arg));
    case CheckKind::kAuth: {
      auto it = users_.find(check.user);
      if (it == users_.end() || it->second != check.password) {
        return Verdict::Reject(MakeReply(ReplyId::kAuthFailed));
      }
      Verdict v;
      v.auth_user = check.user;
      v.relay_allowed = true;
      return v;
    }
    case CheckKind::kEtrn: {
      Reply r;
      r.code = 458;
      r.enhanced = "4.3.0";
      r.lines.push_back(
          StrCat("Unable to queue messages for node ", check.arg));
      return Verdict::Reject(std::move(r));
    }
    default:
      return Verdict::Accept();
  }
}

}  // namespace zm::smtp
