// First cut of the policy checks: relay for trusted networks only.
#include "node/smtpserver/smtpserver_checks.h"

#include <utility>

#include "node/smtp/session.h"

namespace zm::smtpserver {
namespace {

class PolicyChecks : public smtp::Checks {
 public:
  PolicyChecks(std::shared_ptr<const Settings> settings, CheckDeps deps)
      : settings_(std::move(settings)), deps_(deps) {}

  smtp::Verdict Decide(const smtp::Session& session,
                       const smtp::Check& check) override {
    smtp::Verdict v;
    if (check.kind == smtp::CheckKind::kConnect) {
      v.relay_allowed = settings_->policy.IsTrusted(session.client().addr);
    }
    return v;
  }

 private:
  std::shared_ptr<const Settings> settings_;
  CheckDeps deps_;
};

}  // namespace

std::unique_ptr<smtp::Checks> MakePolicyChecks(
    std::shared_ptr<const Settings> settings, CheckDeps deps) {
  return std::make_unique<PolicyChecks>(std::move(settings), deps);
}

}  // namespace zm::smtpserver
