#include "node/zmailer/zmailer_tlsrpt.h"

#include <ctime>
#include <iostream>

#include "node/common/strings.h"
#include "node/config/mail_conf.h"
#include "node/tlspolicy/tlsrpt.h"
#include "node/zmailer/zmailer.h"

namespace zm::zmailer::internal {
namespace {

constexpr int kExitNoInput = 66;  // EX_NOINPUT

}  // namespace

TlsrptCommand::TlsrptCommand(CLI::App& app) {
  cmd_ = app.add_subcommand(
      "tlsrpt", "print the RFC 8460 TLS reports of a day (JSON)");
  cmd_->add_option("--day", day_, "YYYY-MM-DD (UTC, default today)");
  cmd_->add_option("--domain", domain_, "only this policy domain");
  cmd_->add_option("--org", org_,
                   "organization-name (default mail.conf hostname)");
}

int TlsrptCommand::Run(const NodeDir& node) const {
  std::string day =
      day_.empty() ? tlspolicy::Day(static_cast<int64_t>(::time(nullptr)))
                   : day_;
  std::string org = org_;
  if (org.empty()) {
    auto mc = config::LoadMailConf(node);
    if (mc.ok()) org = mc->hostname;
    if (org.empty()) org = "localhost";
  }
  auto reports =
      tlspolicy::Aggregate(node.log() + "/tlsrpt", day, org, domain_);
  if (!reports.ok()) {
    std::cerr << "zmailer tlsrpt: " << Message(reports.status()) << "\n";
    if (absl::IsInvalidArgument(reports.status())) return kExitUsage;
    if (absl::IsNotFound(reports.status())) return kExitNoInput;
    return kExitFailure;
  }
  if (!domain_.empty()) {
    std::cout << (*reports)[0].dump(2) << "\n";
  } else {
    std::cout << nlohmann::json(*reports).dump(2) << "\n";
  }
  return kExitOk;
}

}  // namespace zm::zmailer::internal
