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

class GrpcAdminClient;

// Turns gRPC core's own log lines off (it prints a TLS handshake failure
// on stderr): for command-line programs, which report the errors the
// calls return in one line of their own.
void QuietGrpcLog();

// One ETRN on the node's own scheduler as user "nobody", the way the
// smtpserver, admind and clusterd ask: Unavailable when the
// scheduler is down, else its ActionReply ("ETRN d: N recipients scheduled
// for delivery" / "ETRN d: nothing queued"). Blocks for at most
// `timeout_ms` per call (two calls: the nonce, then Etrn).
absl::StatusOr<pb::ActionReply> LocalEtrn(const NodeDir& node,
                                          const std::string& domain,
                                          int64_t timeout_ms = 10'000);

// True for the scheduler's refusals (Unauthenticated: no such user for
// the caller's address or a wrong password; PermissionDenied: no ETRN
// token), which RFC 1985 answers with 459; anything else (Unavailable:
// the scheduler is down) is 458.
bool IsRefusal(const absl::Status& s);

class GrpcAdminClient {
 public:
  // To the node's run/scheduler.sock. Fetches the first nonce, so a
  // scheduler that is down shows at once (Unavailable).
  static absl::StatusOr<std::unique_ptr<GrpcAdminClient>> Connect(
      const NodeDir& node, std::string user = "nobody",
      std::string password = "nobody");
  // To a gRPC target: "unix:/path", "127.0.0.1:1740", "[::1]:1740".
  // `ca_file` (PEM) non-empty: TLS, the server's certificate must chain to
  // it and name the target's host (DNS or IP SAN); a handshake that fails
  // is Unavailable "TLS handshake with ... failed: <gRPC's reason>".
  static absl::StatusOr<std::unique_ptr<GrpcAdminClient>> ConnectTo(
      const std::string& target, std::string user, std::string password,
      int64_t timeout_ms = 30'000, const std::string& ca_file = "");

  // The deadline of each unary call (default 30 s); ListMessages and
  // WatchEvents have their own.
  void set_call_timeout_ms(int64_t ms) { call_timeout_ms_ = ms; }

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
  int64_t call_timeout_ms_ = 30'000;
  std::string nonce_;  // fetched ahead (by Connect); used by the next call
};

}  // namespace zm::admin

#endif  // ZM_ADMIN_ADMIN_GRPC_CLIENT_H_
