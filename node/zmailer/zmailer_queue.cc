#include "node/zmailer/zmailer_queue.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <iostream>
#include <optional>
#include <vector>

#include "node/admin/admin_grpc_client.h"
#include "node/admin/scheduler_auth.h"
#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/mail/envelope.h"
#include "node/mail/queue_id.h"
#include "node/scheduler/scheduler_conf.h"
#include "node/spool/spool.h"
#include "node/zmailer/commands_internal.h"
#include "node/zmailer/zmailer.h"
#include "node/zmailer/zmailer_policy.h"

namespace zm::zmailer::internal {
namespace {

constexpr int kExNoInput = 66;      // EX_NOINPUT: no such message
constexpr int kExUnavailable = 69;  // EX_UNAVAILABLE: scheduler down
constexpr int kExNoPerm = 77;       // EX_NOPERM
constexpr int kExTempFail = 75;     // EX_TEMPFAIL: some node did not answer
constexpr uint32_t kEtrnWaitMs = 10000;

bool CheckId(const std::string& qid) {
  if (mail::IsQueueId(qid)) return true;
  std::cerr << "zmailer: '" << qid << "' is not a queue id\n";
  return false;
}

// The file in spool/<folder>/ for qid: "qid" or "qid.<cause>".
std::optional<std::string> FindIn(const NodeDir& node, std::string_view folder,
                                  const std::string& qid) {
  auto names = fs::ListDir(StrCat(node.spool(), "/", folder));
  if (!names.ok()) return std::nullopt;
  for (const auto& n : *names) {
    if (n == qid || n.rfind(qid + ".", 0) == 0) return n;
  }
  return std::nullopt;
}

// Moves spool/<folder>/<name> to router/<qid> if it is a whole message
// file (the router then processes it again).
int BackToRouter(const NodeDir& node, std::string_view folder,
                 const std::string& name, const std::string& qid,
                 std::string_view what) {
  std::string from = StrCat(node.spool(), "/", folder, "/", name);
  // Read with the bound of every whole-file command (ReadFile's default,
  // 64 MiB, refused a big message as "not a message file").
  auto text = fs::ReadFile(from, kMaxMessageFileBytes);
  if (!text.ok()) {
    std::cerr << "zmailer: " << Message(text.status())
              << "; it stays where it is\n";
    return kExitFailure;
  }
  if (auto mf = mail::ParseMessageFile(*text); !mf.ok()) {
    std::cerr << "zmailer: " << folder << "/" << name
              << " is not a message file (" << Message(mf.status())
              << "); it stays where it is\n";
    return kExitFailure;
  }
  std::string to = StrCat(node.spool(), "/", spool::kRouter, "/", qid);
  if (auto s = fs::RenameNoReplace(from, to); !s.ok()) {
    std::cerr << "zmailer: " << s.message() << "\n";
    return kExitFailure;
  }
  (void)fs::FsyncDir(StrCat(node.spool(), "/", spool::kRouter));
  std::cout << qid << ": " << what << ", back to the router\n";
  return kExitOk;
}

absl::StatusOr<std::unique_ptr<admin::GrpcAdminClient>> ConnectWith(
    const NodeDir& node, uint32_t token) {
  if (token == admin::kTokenKill) {
    auto conf = scheduler::LoadSchedulerConf(node);
    if (!conf.ok()) return conf.status();
    auto auth = admin::LoadSchedulerAuth(conf->authfile);
    if (!auth.ok()) return auth.status();
    for (const auto& e : auth->entries) {
      if ((e.tokens & token) != token) continue;
      bool local = false;
      for (const auto& m : e.masks)
        local |= m.Matches(admin::PeerAddress::Local());
      if (local) {
        return admin::GrpcAdminClient::Connect(node, e.user, e.password);
      }
    }
    return absl::PermissionDeniedError(
        StrCat(conf->authfile,
               " has no user allowed KILL from this host (e.g. "
               "root:secret:ALL:[127.0.0.1]/32)"));
  }
  return admin::GrpcAdminClient::Connect(node);
}

int AdminError(const absl::Status& s) {
  std::cerr << "zmailer: " << s.message() << "\n";
  if (s.code() == absl::StatusCode::kPermissionDenied) return kExNoPerm;
  if (s.code() == absl::StatusCode::kUnavailable ||
      s.code() == absl::StatusCode::kDeadlineExceeded) {
    return kExUnavailable;
  }
  return kExitFailure;
}

// Runs one admin action over gRPC (logged in as ConnectWith(token)
// chooses); prints its reply line.
int AdminAction(
    const NodeDir& node, uint32_t token,
    const std::function<absl::StatusOr<admin::pb::ActionReply>(
        admin::GrpcAdminClient&)>& action,
    bool not_found_is_noinput) {
  auto c = ConnectWith(node, token);
  if (!c.ok()) return AdminError(c.status());
  auto r = action(**c);
  if (!r.ok()) {
    if (r.status().code() == absl::StatusCode::kUnauthenticated ||
        r.status().code() == absl::StatusCode::kPermissionDenied ||
        r.status().code() == absl::StatusCode::kUnavailable) {
      return AdminError(r.status());
    }
    std::cerr << "zmailer: " << r.status().message() << "\n";
    return not_found_is_noinput ? kExNoInput : kExitFailure;
  }
  std::cout << r->text() << "\n";
  return kExitOk;
}

}  // namespace

int CmdThawMessage(const NodeDir& node, const std::string& qid) {
  if (!CheckId(qid)) return kExitUsage;
  auto name = FindIn(node, spool::kFreezer, qid);
  if (!name) {
    std::cerr << "zmailer: no frozen message " << qid << "\n";
    return kExNoInput;
  }
  return BackToRouter(node, spool::kFreezer, *name, qid, "thawed");
}

int CmdRequeue(const NodeDir& node, const std::string& qid) {
  if (!CheckId(qid)) return kExitUsage;
  if (auto name = FindIn(node, spool::kPostman, qid)) {
    return BackToRouter(node, spool::kPostman, *name, qid, "requeued");
  }
  if (auto name = FindIn(node, spool::kFreezer, qid)) {
    return BackToRouter(node, spool::kFreezer, *name, qid, "requeued");
  }
  return AdminAction(
      node, admin::kTokenEtrn,
      [&](admin::GrpcAdminClient& c) { return c.RunQueue(qid); }, true);
}

int CmdDelete(const NodeDir& node, const std::string& qid) {
  if (!CheckId(qid)) return kExitUsage;
  bool removed = false;
  for (std::string_view folder : {spool::kFreezer, spool::kPostman}) {
    if (auto name = FindIn(node, folder, qid)) {
      std::string path = StrCat(node.spool(), "/", folder, "/", *name);
      if (::unlink(path.c_str()) != 0) {
        std::cerr << "zmailer: cannot remove " << path << ": "
                  << std::strerror(errno) << "\n";
        return kExitFailure;
      }
      std::cout << qid << ": removed from " << folder << "/\n";
      removed = true;
    }
  }
  if (removed) return kExitOk;
  return AdminAction(
      node, admin::kTokenKill,
      [&](admin::GrpcAdminClient& c) { return c.KillMessage(qid); }, true);
}

// Cluster-wide: every live node acts once on the request; with `wait`,
// each node's answer. nullopt: the agent is down (the caller goes local).
std::optional<int> FleetEtrn(const NodeDir& node, const std::string& domain,
                             bool wait) {
  auto client = FleetClient(node);
  if (!client.ok()) return FleetError("etrn", client.status());
  namespace v1 = ::zmnode::cluster::v1;
  v1::StartEtrnRequest start;
  start.set_domain(domain);
  auto started = (*client)->StartEtrn(start);
  if (!started.ok()) {
    if (!absl::IsUnavailable(started.status())) {
      return FleetError("etrn", started.status());
    }
    std::cerr << "zmailer: etrn: " << started.status().message()
              << "; this node only\n";
    return std::nullopt;
  }
  const std::string& id = started->request().id();
  std::string nodes;
  for (const std::string& n : started->expected_nodes()) {
    StrAppend(&nodes, nodes.empty() ? "" : " ", n);
  }
  std::cout << "etrn " << domain << ": request " << id << " for "
            << (nodes.empty() ? std::string("every node") : nodes) << "\n";
  if (!wait) return kExitOk;
  v1::EtrnStatusRequest req;
  req.set_request_id(id);
  req.set_wait_ms(kEtrnWaitMs);
  auto status = (*client)->EtrnStatus(req);
  if (!status.ok()) return FleetError("etrn", status.status());
  for (const v1::EtrnResult& r : status->results()) {
    std::cout << r.node_id() << ": " << r.code() << " " << r.text() << "\n";
  }
  for (const std::string& n : status->pending_nodes()) {
    std::cout << n << ": no answer yet\n";
  }
  return status->pending_nodes_size() == 0 ? kExitOk : kExTempFail;
}

int CmdEtrn(const NodeDir& node, const std::string& domain, bool wait) {
  if (domain.empty() || domain.find_first_of(" \t\r\n") != std::string::npos) {
    std::cerr << "zmailer: etrn needs a domain\n";
    return kExitUsage;
  }
  if (cluster::HasCluster(node)) {
    if (std::optional<int> rc = FleetEtrn(node, domain, wait)) return *rc;
  }
  return AdminAction(
      node, admin::kTokenEtrn,
      [&](admin::GrpcAdminClient& c) { return c.Etrn(domain); }, false);
}

}  // namespace zm::zmailer::internal
