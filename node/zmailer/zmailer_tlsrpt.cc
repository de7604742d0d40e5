#include "node/zmailer/zmailer_tlsrpt.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <iostream>

#include "node/common/fs.h"
#include "node/common/log.h"
#include "node/common/strings.h"
#include "node/config/mail_conf.h"
#include "node/dns/resolver.h"
#include "node/sendmail/submit.h"
#include "node/tlspolicy/tlsrpt.h"
#include "node/zmailer/zmailer.h"

namespace zm::zmailer::internal {
namespace {

constexpr int kExitNoInput = 66;  // EX_NOINPUT
constexpr int kExitTempFail = 75;  // EX_TEMPFAIL
constexpr int kExitConfig = 78;    // EX_CONFIG

// Submits `message` to `to` from the null sender, as sendmail would.
absl::StatusOr<std::string> SubmitReport(const submit::SubmitContext& ctx,
                                         const std::string& to,
                                         const std::string& message,
                                         Logger& log) {
  int fd = ::memfd_create("tlsrpt", MFD_CLOEXEC);
  if (fd < 0) return fs::ErrnoStatus("memfd_create", "tlsrpt", errno);
  absl::Status w = fs::WriteAll(fd, message, "tlsrpt");
  if (w.ok() && ::lseek(fd, 0, SEEK_SET) != 0) {
    w = fs::ErrnoStatus("lseek", "tlsrpt", errno);
  }
  if (!w.ok()) {
    ::close(fd);
    return w;
  }
  submit::SubmitRequest req;
  req.sender = "";
  req.sender_given = true;
  req.recipients = {to};
  req.dot_terminates = false;
  auto done = submit::Submit(ctx, req, fd, log);
  ::close(fd);
  if (!done.ok()) return done.status();
  return done->queue_id;
}

}  // namespace

TlsrptCommand::TlsrptCommand(CLI::App& app) {
  cmd_ = app.add_subcommand(
      "tlsrpt", "print the RFC 8460 TLS reports of a day (JSON)");
  cmd_->add_option("--day", day_, "YYYY-MM-DD (UTC, default today)");
  cmd_->add_option("--domain", domain_, "only this policy domain");
  cmd_->add_option("--org", org_,
                   "organization-name (default mail.conf hostname)");
  cmd_->add_flag("--send", send_,
                 "mail the reports to each domain's rua= (default day: "
                 "yesterday)");
  cmd_->add_option("--from", from_,
                   "From: of the reports (default postmaster@hostname)");
}

int TlsrptCommand::Run(const NodeDir& node) const {
  int64_t now = static_cast<int64_t>(::time(nullptr));
  std::string day = !day_.empty() ? day_
                    : send_       ? tlspolicy::Day(now - 86400)
                                  : tlspolicy::Day(now);
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
  if (send_) return Send(node, *reports, org);
  if (!domain_.empty()) {
    std::cout << (*reports)[0].dump(2) << "\n";
  } else {
    std::cout << nlohmann::json(*reports).dump(2) << "\n";
  }
  return kExitOk;
}

int TlsrptCommand::Send(const NodeDir& node,
                        const std::vector<nlohmann::json>& reports,
                        const std::string& org) const {
  auto options = dns::OptionsForNode(node);
  if (!options.ok()) {
    std::cerr << "zmailer tlsrpt: " << Message(options.status()) << "\n";
    return kExitConfig;
  }
  auto resolver = dns::Resolver::Create(*options);
  if (!resolver.ok()) {
    std::cerr << "zmailer tlsrpt: " << Message(resolver.status()) << "\n";
    return kExitConfig;
  }
  auto ctx = submit::LoadContext(node);
  if (!ctx.ok()) {
    std::cerr << "zmailer tlsrpt: " << Message(ctx.status()) << "\n";
    return kExitConfig;
  }
  Logger log("zmailer", node.maillog(), /*to_stderr=*/false);
  std::string from = from_.empty() ? StrCat("postmaster@", org) : from_;
  int rc = kExitOk;
  for (const nlohmann::json& report : reports) {
    std::string domain =
        report["policies"][0]["policy"]["policy-domain"].get<std::string>();
    auto txt = (*resolver)->LookupTxt(StrCat("_smtp._tls.", domain));
    absl::StatusOr<std::vector<std::string>> uris =
        txt.ok() ? tlspolicy::ParseTlsrptRecords(*txt)
                 : absl::StatusOr<std::vector<std::string>>(txt.status());
    if (!uris.ok()) {
      bool none = absl::IsNotFound(uris.status());
      std::cout << domain << ": "
                << (none ? "no TLS reporting record, not sent"
                         : StrCat("not sent: ", Message(uris.status())))
                << "\n";
      if (!none && absl::IsUnavailable(uris.status())) rc = kExitTempFail;
      continue;
    }
    for (const std::string& uri : *uris) {
      std::optional<std::string> to = tlspolicy::MailtoAddress(uri);
      if (!to) {
        std::cout << domain << ": " << uri
                  << ": not sent (only mailto: is supported)\n";
        continue;
      }
      auto msg = tlspolicy::ReportMessage(
          report, {.from = from, .to = *to, .submitter = org,
                   .now = static_cast<int64_t>(::time(nullptr))});
      absl::StatusOr<std::string> qid =
          msg.ok() ? SubmitReport(*ctx, *to, *msg, log)
                   : absl::StatusOr<std::string>(msg.status());
      if (!qid.ok()) {
        std::cout << domain << ": report to " << *to
                  << " not sent: " << Message(qid.status()) << "\n";
        rc = kExitTempFail;
        continue;
      }
      log.Info(*qid, StrCat("TLS report of ", domain, " to <", *to, ">"));
      std::cout << domain << ": report sent to " << *to << " (" << *qid
                << ")\n";
    }
  }
  return rc;
}

}  // namespace zm::zmailer::internal
