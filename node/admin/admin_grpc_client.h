// zm::admin::GrpcAdminClient: the scheduler's admin service over gRPC
// (zmnode.admin.v1.SchedulerAdmin, docs/admin-protocol.md), used by mailq
// and zmailer's queue commands. Each call fetches a single-use nonce and
// proves the password with HMAC-SHA256; the password never travels.
//
//   auto c = zm::admin::GrpcAdminClient::Connect(node, "nobody", "nobody");
//   if (!c.ok()) ...;                 // Unavailable: scheduler down
//   auto q = (*c)->ShowQueueThreads();
//   // Unauthenticated: wrong password or address; PermissionDenied: token
//
// Not thread-safe; one client per thread.
#ifndef ZM_ADMIN_ADMIN_GRPC_CLIENT_H_
#define ZM_ADMIN_ADMIN_GRPC_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "node/common/node_dir.h"
#include "zmnode/admin/v1/admin.grpc.pb.h"

namespace grpc {
class ClientContext;
}

namespace zm::admin {

namespace pb = ::zmnode::admin::v1;

// "unix:<node>/run/scheduler.sock".
std::string GrpcSocketTarget(const NodeDir& node);

class GrpcAdminClient {
 public:
  // To the node's run/scheduler.sock. Fetches the first nonce, so a
  // scheduler that is down shows at once (Unavailable).
  static absl::StatusOr<std::unique_ptr<GrpcAdminClient>> Connect(
      const NodeDir& node, std::string user = "nobody",
      std::string password = "nobody");
  // To a gRPC target: "unix:/path", "127.0.0.1:1740", "[::1]:1740".
  static absl::StatusOr<std::unique_ptr<GrpcAdminClient>> ConnectTo(
      const std::string& target, std::string user, std::string password);

  absl::StatusOr<pb::QueueSummary> ShowQueueShort();
  absl::StatusOr<pb::QueueThreads> ShowQueueThreads();
  absl::StatusOr<pb::ThreadMessages> ShowThread(const std::string& channel,
                                                const std::string& host);
  // channel/host "" = any.
  absl::StatusOr<std::vector<pb::MessageEntry>> ListMessages(
      const std::string& channel = "", const std::string& host = "");
  absl::StatusOr<pb::Counters> GetCounters();
  absl::StatusOr<pb::ActionReply> Etrn(const std::string& domain);
  absl::StatusOr<pb::ActionReply> RunQueue(const std::string& qid);  // ""=all
  absl::StatusOr<pb::ActionReply> KillThread(const std::string& channel,
                                             const std::string& host);
  absl::StatusOr<pb::ActionReply> KillMessage(const std::string& qid);
  // Calls `on_event` for each delivery event until it returns false, the
  // stream ends or `timeout_ms` passes (then OK). `on_ready` runs once the
  // server has registered the watcher.
  absl::Status WatchEvents(
      const std::function<bool(const pb::DeliveryEvent&)>& on_event,
      int64_t timeout_ms, const std::function<void()>& on_ready = nullptr);

  // Lower level, for tests: a fresh nonce, and the proof metadata of one
  // call of `method` ("KillMessage") with that nonce.
  absl::StatusOr<std::string> Challenge();
  void Sign(grpc::ClientContext* ctx, const std::string& nonce,
            std::string_view method) const;
  pb::SchedulerAdmin::Stub& stub() { return *stub_; }

 private:
  GrpcAdminClient(std::unique_ptr<pb::SchedulerAdmin::Stub> stub,
                  std::string user, std::string password)
      : stub_(std::move(stub)),
        user_(std::move(user)),
        password_(std::move(password)) {}
  // A context with a deadline and the proof for `method`.
  absl::Status Prepare(grpc::ClientContext* ctx, std::string_view method,
                       int64_t timeout_ms);

  std::unique_ptr<pb::SchedulerAdmin::Stub> stub_;
  std::string user_, password_;
  std::string nonce_;  // fetched ahead (by Connect); used by the next call
};

}  // namespace zm::admin

#endif  // ZM_ADMIN_ADMIN_GRPC_CLIENT_H_
