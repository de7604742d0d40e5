// `zmailer policy add|del|list`: the fleet policy overlay.
#include "node/zmailer/zmailer_policy.h"

#include <ctime>
#include <iostream>

#include "cluster/client/policy_overlay.h"
#include "fmt/format.h"
#include "nlohmann/json.hpp"
#include "node/common/strings.h"
#include "node/config/cluster_conf.h"
#include "node/smtpserver/smtpserver_policy.h"
#include "node/zmailer/zmailer.h"

namespace zm::zmailer::internal {
namespace {

namespace v1 = ::zmnode::cluster::v1;

constexpr int kExNoInput = 66;      // EX_NOINPUT
constexpr int kExUnavailable = 69;  // EX_UNAVAILABLE
constexpr int kExConfig = 78;       // EX_CONFIG

std::string UtcTime(int64_t unix_ms) {
  if (unix_ms <= 0) return "never";
  std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string ActionText(const v1::PolicyEntry& e) {
  std::string a(cluster::PolicyActionName(e.action()));
  if (e.action() == v1::POLICY_ACTION_RATE_CLASS) a += " " + e.rate_class();
  return a;
}

nlohmann::json EntryJson(const v1::PolicyEntry& e) {
  nlohmann::json j;
  j["subject"] = e.subject();
  j["action"] = std::string(cluster::PolicyActionName(e.action()));
  if (e.action() == v1::POLICY_ACTION_RATE_CLASS) {
    j["rate_class"] = e.rate_class();
  }
  j["reason"] = e.reason();
  j["author"] = e.author_node();
  j["created_unix_ms"] = e.created_unix_ms();
  j["expires_unix_ms"] = e.expires_unix_ms();
  if (e.deleted()) j["deleted"] = true;
  return j;
}

void PrintEntry(const v1::PolicyEntry& e) {
  std::cout << fmt::format("{} {}{}, expires {}, by {}\n", e.subject(),
                           ActionText(e),
                           e.reason().empty() ? "" : " (" + e.reason() + ")",
                           UtcTime(e.expires_unix_ms()),
                           e.author_node().empty() ? "?" : e.author_node());
}

}  // namespace

absl::StatusOr<std::unique_ptr<cluster::ClusterClient>> FleetClient(
    const NodeDir& node) {
  if (absl::Status s = RequireNode(node); !s.ok()) {
    return absl::FailedPreconditionError(Message(s));
  }
  return cluster::ClusterClient::ForNode(node);
}

int FleetError(std::string_view what, const absl::Status& s) {
  std::cerr << "zmailer: " << what << ": " << Message(s) << "\n";
  switch (s.code()) {
    case absl::StatusCode::kFailedPrecondition:
      return kExConfig;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return kExUnavailable;
    case absl::StatusCode::kInvalidArgument:
      return kExitUsage;
    case absl::StatusCode::kNotFound:
      return kExNoInput;
    default:
      return kExitFailure;
  }
}

PolicyCommand::PolicyCommand(CLI::App& app) {
  cmd_ = app.add_subcommand(
      "policy", "the fleet's policy overlay (add, del, list), on every node");
  cmd_->require_subcommand(1);
  add_ = cmd_->add_subcommand("add", "add or replace the entry of SUBJECT");
  add_->add_option("SUBJECT", subject_,
                   "IP, CIDR, domain, .domain (with subdomains) or address")
      ->required();
  add_->add_option("ACTION", action_,
                   "reject | defer | freeze | allow | rate-class")
      ->required();
  add_->add_option("--reason", reason_, "the text clients and logs see");
  add_->add_option("--ttl", ttl_, "lifetime: 90s, 30m, 1h, 2d (default: none)");
  add_->add_option("--class", rate_class_,
                   "rate-class: N[,M] messages[,recipients] per window");
  del_ = cmd_->add_subcommand("del", "delete the entry of SUBJECT");
  del_->add_option("SUBJECT", subject_)->required();
  list_ = cmd_->add_subcommand("list", "the live entries");
  list_->add_flag("--json", json_, "print JSON");
}

int PolicyCommand::Run(const NodeDir& node) const {
  if (add_->parsed()) return Add(node);
  if (del_->parsed()) return Delete(node);
  return List(node);
}

int PolicyCommand::Add(const NodeDir& node) const {
  // Everything is checked before the agent is asked.
  absl::StatusOr<cluster::Subject> subject = cluster::ParseSubject(subject_);
  if (!subject.ok()) return FleetError("policy add", subject.status());
  std::optional<v1::PolicyAction> action = cluster::ParsePolicyAction(action_);
  if (!action) {
    return FleetError("policy add",
                      absl::InvalidArgumentError(StrCat(
                          "unknown action '", action_,
                          "' (reject, defer, freeze, allow, rate-class)")));
  }
  if (*action == v1::POLICY_ACTION_RATE_CLASS) {
    auto limit = smtpserver::ParseRateLimit(rate_class_);
    if (rate_class_.empty() || !limit ||
        (limit->messages == 0 && limit->recipients == 0)) {
      return FleetError("policy add",
                        absl::InvalidArgumentError(
                            "rate-class needs --class N[,M] (messages and "
                            "recipients per window, as ratelimitmsgs)"));
    }
  } else if (!rate_class_.empty()) {
    return FleetError("policy add", absl::InvalidArgumentError(
                                        "--class goes with rate-class only"));
  }
  uint32_t ttl_sec = 0;
  if (!ttl_.empty()) {
    absl::StatusOr<int64_t> ms = config::ParseDurationMs(ttl_);
    if (!ms.ok() || *ms < 1000 || *ms > int64_t{3650} * 86400 * 1000) {
      return FleetError("policy add",
                        absl::InvalidArgumentError(StrCat(
                            "--ttl wants 1s to 3650d (90s, 30m, 1h, 2d), not '",
                            ttl_, "'")));
    }
    ttl_sec = static_cast<uint32_t>(*ms / 1000);
  }
  if (reason_.size() > 512 ||
      reason_.find_first_of("\r\n") != std::string::npos) {
    return FleetError("policy add",
                      absl::InvalidArgumentError(
                          "--reason must be one line of at most 512 bytes"));
  }
  auto client = FleetClient(node);
  if (!client.ok()) return FleetError("policy add", client.status());
  v1::PolicyAddRequest req;
  req.set_subject(subject->text);
  req.set_action(*action);
  req.set_rate_class(rate_class_);
  req.set_reason(reason_);
  req.set_ttl_seconds(ttl_sec);
  absl::StatusOr<v1::PolicyReply> r = (*client)->PolicyAdd(req);
  if (!r.ok()) return FleetError("policy add", r.status());
  for (const v1::PolicyEntry& e : r->entries()) PrintEntry(e);
  if (r->entries_size() == 0) std::cout << subject->text << " added\n";
  return kExitOk;
}

int PolicyCommand::Delete(const NodeDir& node) const {
  absl::StatusOr<cluster::Subject> subject = cluster::ParseSubject(subject_);
  if (!subject.ok()) return FleetError("policy del", subject.status());
  auto client = FleetClient(node);
  if (!client.ok()) return FleetError("policy del", client.status());
  v1::PolicyDeleteRequest req;
  req.set_subject(subject->text);
  absl::StatusOr<v1::PolicyReply> r = (*client)->PolicyDelete(req);
  if (!r.ok()) return FleetError("policy del", r.status());
  std::cout << subject->text << " deleted\n";
  return kExitOk;
}

int PolicyCommand::List(const NodeDir& node) const {
  auto client = FleetClient(node);
  if (!client.ok()) return FleetError("policy list", client.status());
  absl::StatusOr<v1::PolicyReply> r = (*client)->PolicyList({});
  if (!r.ok()) return FleetError("policy list", r.status());
  if (json_) {
    nlohmann::json out = nlohmann::json::array();
    for (const v1::PolicyEntry& e : r->entries()) {
      if (!e.deleted()) out.push_back(EntryJson(e));
    }
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  std::cout << fmt::format("{:<40} {:<16} {:<21} {:<12} {}\n", "SUBJECT",
                           "ACTION", "EXPIRES", "AUTHOR", "REASON");
  for (const v1::PolicyEntry& e : r->entries()) {
    if (e.deleted()) continue;
    std::cout << fmt::format("{:<40} {:<16} {:<21} {:<12} {}\n", e.subject(),
                             ActionText(e), UtcTime(e.expires_unix_ms()),
                             e.author_node().empty() ? "?" : e.author_node(),
                             e.reason());
  }
  return kExitOk;
}

}  // namespace zm::zmailer::internal
