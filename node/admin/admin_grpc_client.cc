#include "node/admin/admin_grpc_client.h"

#include <grpc/support/log.h>
#include <grpcpp/grpcpp.h>

#include <chrono>

#include "node/admin/scheduler_auth.h"
#include "node/common/fs.h"
#include "node/common/strings.h"

namespace zm::admin {
namespace {

constexpr int64_t kListTimeoutMs = 120'000;  // a million recipients
constexpr char kServicePrefix[] = "/zmnode.admin.v1.SchedulerAdmin/";

absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      s.error_message());
}

void SetDeadline(grpc::ClientContext* ctx, int64_t timeout_ms) {
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(timeout_ms));
}

}  // namespace

void QuietGrpcLog() {
  gpr_set_log_function([](gpr_log_func_args*) {});
}

std::string GrpcSocketTarget(const NodeDir& node) {
  return StrCat("unix:", node.run(), "/scheduler.sock");
}

absl::StatusOr<pb::ActionReply> LocalEtrn(const NodeDir& node,
                                          const std::string& domain,
                                          int64_t timeout_ms) {
  auto c = GrpcAdminClient::ConnectTo(GrpcSocketTarget(node), "nobody",
                                      "nobody", timeout_ms);
  if (!c.ok()) return c.status();
  return (*c)->Etrn(domain);
}

bool IsRefusal(const absl::Status& s) {
  return absl::IsUnauthenticated(s) || absl::IsPermissionDenied(s);
}

absl::StatusOr<std::unique_ptr<GrpcAdminClient>> GrpcAdminClient::Connect(
    const NodeDir& node, std::string user, std::string password) {
  return ConnectTo(GrpcSocketTarget(node), std::move(user),
                   std::move(password));
}

absl::StatusOr<std::unique_ptr<GrpcAdminClient>> GrpcAdminClient::ConnectTo(
    const std::string& target, std::string user, std::string password,
    int64_t timeout_ms, const std::string& ca_file) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);  // big queues: many threads
  args.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
  std::shared_ptr<grpc::ChannelCredentials> creds =
      grpc::InsecureChannelCredentials();
  if (!ca_file.empty()) {
    auto ca = fs::ReadFile(ca_file, 1u << 20);
    if (!ca.ok()) return ca.status();
    grpc::SslCredentialsOptions opts;
    opts.pem_root_certs = std::move(*ca);
    creds = grpc::SslCredentials(opts);
  }
  auto channel = grpc::CreateCustomChannel(target, creds, args);
  std::unique_ptr<GrpcAdminClient> c(new GrpcAdminClient(
      pb::SchedulerAdmin::NewStub(channel), std::move(user),
      std::move(password)));
  c->call_timeout_ms_ = timeout_ms;
  auto nonce = c->Challenge();
  if (!nonce.ok()) {
    if (nonce.status().code() != absl::StatusCode::kUnavailable &&
        nonce.status().code() != absl::StatusCode::kDeadlineExceeded) {
      return nonce.status();
    }
    std::string why(nonce.status().message());
    if (!ca_file.empty() && (why.find("andshake") != std::string::npos ||
                             why.find("SSL") != std::string::npos)) {
      return absl::UnavailableError(
          StrCat("TLS handshake with ", target, " failed (does ", ca_file,
                 " hold the CA of its certificate, and does it name that "
                 "host?): ",
                 why));
    }
    if (ca_file.empty() && target.rfind("unix:", 0) != 0) {
      return absl::UnavailableError(
          StrCat("no answer from the scheduler at ", target,
                 " (not running, or it speaks TLS: give --cafile): ", why));
    }
    return absl::UnavailableError(StrCat(
        "scheduler is not running (cannot reach ", target, ": ", why, ")"));
  }
  c->nonce_ = std::move(*nonce);
  return c;
}

absl::StatusOr<std::string> GrpcAdminClient::Challenge() {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, call_timeout_ms_);
  pb::ChallengeRequest req;
  pb::ChallengeReply reply;
  if (auto s = FromGrpc(stub_->Challenge(&ctx, req, &reply)); !s.ok())
    return s;
  return reply.nonce();
}

void GrpcAdminClient::Sign(grpc::ClientContext* ctx, const std::string& nonce,
                           std::string_view method) const {
  ctx->AddMetadata("zm-user", user_);
  ctx->AddMetadata("zm-nonce", nonce);
  ctx->AddMetadata("zm-proof",
                   AdminProof(password_, user_, nonce,
                              StrCat(kServicePrefix, method)));
}

absl::Status GrpcAdminClient::Prepare(grpc::ClientContext* ctx,
                                      std::string_view method,
                                      int64_t timeout_ms) {
  std::string nonce = std::move(nonce_);
  nonce_.clear();
  if (nonce.empty()) {
    auto n = Challenge();
    if (!n.ok()) return n.status();
    nonce = std::move(*n);
  }
  SetDeadline(ctx, timeout_ms);
  Sign(ctx, nonce, method);
  return absl::OkStatus();
}

// One unary call: `call(ctx, reply)` with the proof for `method`.
#define ZM_ADMIN_UNARY(Method, Reply, request)                              \
  grpc::ClientContext ctx;                                                  \
  if (auto s = Prepare(&ctx, #Method, call_timeout_ms_); !s.ok()) return s; \
  Reply reply;                                                              \
  if (auto s = FromGrpc(stub_->Method(&ctx, request, &reply)); !s.ok())     \
    return s;                                                               \
  return reply

absl::StatusOr<pb::QueueSummary> GrpcAdminClient::ShowQueueShort() {
  ZM_ADMIN_UNARY(ShowQueueShort, pb::QueueSummary, pb::Empty());
}

absl::StatusOr<pb::QueueThreads> GrpcAdminClient::ShowQueueThreads() {
  ZM_ADMIN_UNARY(ShowQueueThreads, pb::QueueThreads, pb::Empty());
}

absl::StatusOr<pb::ThreadMessages> GrpcAdminClient::ShowThread(
    const std::string& channel, const std::string& host) {
  pb::ShowThreadRequest req;
  req.set_channel(channel);
  req.set_host(host);
  ZM_ADMIN_UNARY(ShowThread, pb::ThreadMessages, req);
}

absl::StatusOr<pb::Counters> GrpcAdminClient::GetCounters() {
  ZM_ADMIN_UNARY(GetCounters, pb::Counters, pb::Empty());
}

absl::StatusOr<pb::ActionReply> GrpcAdminClient::Etrn(
    const std::string& domain) {
  pb::EtrnRequest req;
  req.set_domain(domain);
  ZM_ADMIN_UNARY(Etrn, pb::ActionReply, req);
}

absl::StatusOr<pb::ActionReply> GrpcAdminClient::RunQueue(
    const std::string& qid) {
  pb::RunQueueRequest req;
  req.set_queue_id(qid);
  ZM_ADMIN_UNARY(RunQueue, pb::ActionReply, req);
}

absl::StatusOr<pb::ActionReply> GrpcAdminClient::KillThread(
    const std::string& channel, const std::string& host) {
  pb::KillThreadRequest req;
  req.set_channel(channel);
  req.set_host(host);
  ZM_ADMIN_UNARY(KillThread, pb::ActionReply, req);
}

absl::StatusOr<pb::ActionReply> GrpcAdminClient::KillMessage(
    const std::string& qid) {
  pb::KillMessageRequest req;
  req.set_queue_id(qid);
  ZM_ADMIN_UNARY(KillMessage, pb::ActionReply, req);
}

#undef ZM_ADMIN_UNARY

absl::StatusOr<std::vector<pb::MessageEntry>> GrpcAdminClient::ListMessages(
    const std::string& channel, const std::string& host) {
  grpc::ClientContext ctx;
  if (auto s = Prepare(&ctx, "ListMessages", kListTimeoutMs); !s.ok())
    return s;
  pb::ListMessagesRequest req;
  req.set_channel(channel);
  req.set_host(host);
  auto reader = stub_->ListMessages(&ctx, req);
  std::vector<pb::MessageEntry> out;
  pb::MessageEntry m;
  while (reader->Read(&m)) out.push_back(std::move(m));
  if (auto s = FromGrpc(reader->Finish()); !s.ok()) return s;
  return out;
}

absl::Status GrpcAdminClient::WatchEvents(
    const std::function<bool(const pb::DeliveryEvent&)>& on_event,
    int64_t timeout_ms, const std::function<void()>& on_ready) {
  grpc::ClientContext ctx;
  if (auto s = Prepare(&ctx, "WatchEvents", timeout_ms); !s.ok()) return s;
  auto reader = stub_->WatchEvents(&ctx, pb::WatchEventsRequest());
  reader->WaitForInitialMetadata();
  if (on_ready) on_ready();
  pb::DeliveryEvent ev;
  bool stopped = false;
  while (reader->Read(&ev)) {
    if (!on_event(ev)) {
      stopped = true;
      ctx.TryCancel();
      break;
    }
  }
  grpc::Status st = reader->Finish();
  if (stopped || st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED)
    return absl::OkStatus();
  return FromGrpc(st);
}

}  // namespace zm::admin
