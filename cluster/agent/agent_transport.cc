// The gRPC client side of the peer service: the membership's Transport and
// the anti-entropy calls, asynchronous (callback API) with deadlines.
#include <grpcpp/grpcpp.h>

#include <chrono>

#include "cluster/agent/agent_internal.h"
#include "cluster/membership/membership_proto.h"
#include "node/common/strings.h"

namespace zm::cluster::internal {

// One call in flight: what the callback API needs to stay alive.
template <typename Req, typename Rep>
struct GrpcTransport::Call {
  // Shared with in_flight_, so Shutdown() may cancel it without a lock
  // while the call ends.
  std::shared_ptr<grpc::ClientContext> ctx =
      std::make_shared<grpc::ClientContext>();
  Req request;
  Rep reply;
};

GrpcTransport::GrpcTransport(const AgentOptions& options, Sender self,
                             Logger& log, Counters& counters)
    : options_(options),
      self_(std::move(self)),
      log_(log),
      counters_(counters) {}

GrpcTransport::~GrpcTransport() { Shutdown(); }

pb::Sender GrpcTransport::SenderProto() const { return ToProto(self_); }

pb::Peer::Stub* GrpcTransport::StubFor(const std::string& address,
                                       const std::string& node_id) {
  std::string name = options_.security.target_name_is_node_id ? node_id : "";
  auto key = std::make_pair(address, name);
  auto it = channels_.find(key);
  if (it != channels_.end()) return it->second.stub.get();
  // Members come and go; a fleet has far fewer addresses than this.
  if (channels_.size() >= 4096) channels_.clear();
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(static_cast<int>(options_.max_message_bytes));
  args.SetMaxSendMessageSize(static_cast<int>(options_.max_message_bytes));
  // A restarted peer must be reachable again within a probe or two.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // No HTTP/2 BDP pings: small messages, and each probe would otherwise
  // bring a PING and its ACK along (idle traffic).
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  if (!name.empty()) args.SetSslTargetNameOverride(name);
  Channel c;
  const auto& creds = name.empty() && options_.security.seed_channel
                          ? options_.security.seed_channel
                          : options_.security.channel;
  c.channel = grpc::CreateCustomChannel(address, creds, args);
  c.stub = pb::Peer::NewStub(c.channel);
  return channels_.emplace(key, std::move(c)).first->second.stub.get();
}

template <typename Req, typename Rep, typename Start, typename Done>
void GrpcTransport::Run(const std::string& address, const std::string& node_id,
                        int64_t timeout_ms, Req request, Start start,
                        Done done) {
  auto* call = new Call<Req, Rep>;
  call->request = std::move(request);
  call->ctx->set_deadline(std::chrono::system_clock::now() +
                          std::chrono::milliseconds(timeout_ms));
  pb::Peer::Stub* stub = nullptr;
  {
    absl::MutexLock l(&mu_);
    if (!closed_) {
      stub = StubFor(address, node_id);
      in_flight_.insert(call->ctx);
    }
  }
  if (stub == nullptr) {
    delete call;
    done(grpc::Status(grpc::StatusCode::CANCELLED, "agent stopping"), Rep());
    return;
  }
  counters_.bytes_sent += call->request.ByteSizeLong();
  start(stub->async(), call->ctx.get(), &call->request, &call->reply,
        [this, call, done = std::move(done)](grpc::Status s) {
          if (s.ok()) counters_.bytes_received += call->reply.ByteSizeLong();
          done(s, call->reply);
          absl::MutexLock l(&mu_);
          in_flight_.erase(call->ctx);
          delete call;
        });
}

void GrpcTransport::SendPing(const Member& target, uint64_t seq,
                             std::vector<Member> updates, int64_t timeout_ms,
                             PingDone done) {
  pb::PingRequest req;
  // No address: the peer knows it (probes are most of an idle fleet's
  // traffic, so every byte counts).
  *req.mutable_from() = SenderProto();
  req.mutable_from()->clear_address();
  req.set_seq(seq);
  AppendToProto(updates, req.mutable_updates());
  Run<pb::PingRequest, pb::PingReply>(
      target.address, target.node_id, timeout_ms, std::move(req),
      [](auto* async, auto* ctx, auto* rq, auto* rp, auto cb) {
        async->Ping(ctx, rq, rp, std::move(cb));
      },
      [this, node_id = target.node_id, done = std::move(done)](
          const grpc::Status& s, const pb::PingReply& reply) {
        if (!s.ok()) return done(false, {});
        if (anti_entropy_ != nullptr) {
          anti_entropy_->NotePeerHash(node_id, reply.state_hash());
        }
        done(true, FromProto(reply.updates()));
      });
}

void GrpcTransport::SendPingReq(const Member& via, const Member& target,
                                uint64_t seq, std::vector<Member> updates,
                                int64_t timeout_ms, PingReqDone done) {
  pb::PingReqRequest req;
  *req.mutable_from() = SenderProto();
  req.set_seq(seq);
  req.set_target_node_id(target.node_id);
  req.set_target_address(target.address);
  // The intermediary needs part of our time for its own probe and reply.
  req.set_timeout_ms(
      static_cast<uint32_t>(std::max<int64_t>(1, timeout_ms * 4 / 5)));
  AppendToProto(updates, req.mutable_updates());
  Run<pb::PingReqRequest, pb::PingReqReply>(
      via.address, via.node_id, timeout_ms, std::move(req),
      [](auto* async, auto* ctx, auto* rq, auto* rp, auto cb) {
        async->PingReq(ctx, rq, rp, std::move(cb));
      },
      [done = std::move(done)](const grpc::Status& s,
                               const pb::PingReqReply& reply) {
        if (!s.ok()) return done(false, false, {});
        done(true, reply.acked(), FromProto(reply.updates()));
      });
}

void GrpcTransport::SendJoin(const std::string& address, const Member& self,
                             int64_t timeout_ms, JoinDone done) {
  JoinVia(address, "", self, timeout_ms, std::move(done));
}

// On the member's own channel (the one its probes use), not a seed's.
void GrpcTransport::SendFullSync(const Member& target, const Member& self,
                                 int64_t timeout_ms, JoinDone done) {
  JoinVia(target.address, target.node_id, self, timeout_ms, std::move(done));
}

void GrpcTransport::JoinVia(const std::string& address,
                            const std::string& node_id, const Member& self,
                            int64_t timeout_ms, JoinDone done) {
  pb::JoinRequest req;
  *req.mutable_self() = ToProto(self);
  Run<pb::JoinRequest, pb::JoinReply>(
      address, node_id, timeout_ms, std::move(req),
      [](auto* async, auto* ctx, auto* rq, auto* rp, auto cb) {
        async->Join(ctx, rq, rp, std::move(cb));
      },
      [this, done = std::move(done), address](const grpc::Status& s,
                                              const pb::JoinReply& reply) {
        if (!s.ok()) {
          std::string why =
              StrCat("join via ", address, " failed: ", s.error_message());
          if (s.error_code() != grpc::StatusCode::CANCELLED &&
              limiter_.Allow(address)) {
            log_.Info("", why);
          }
          return done(absl::UnavailableError(why));
        }
        done(FromProto(reply.members()));
      });
}

void GrpcTransport::SendLeave(const Member& to, const Member& self,
                              int64_t timeout_ms, LeaveDone done) {
  pb::LeaveRequest req;
  *req.mutable_self() = ToProto(self);
  Run<pb::LeaveRequest, pb::LeaveReply>(
      to.address, to.node_id, timeout_ms, std::move(req),
      [](auto* async, auto* ctx, auto* rq, auto* rp, auto cb) {
        async->Leave(ctx, rq, rp, std::move(cb));
      },
      [done = std::move(done)](const grpc::Status& s, const pb::LeaveReply&) {
        done(s.ok());
      });
}

namespace {
absl::Status ToAbsl(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      s.error_message());
}
}  // namespace

void GrpcTransport::Exchange(const Member& peer, const pb::Digest& digest,
                             ExchangeDone done) {
  pb::ExchangeRequest req;
  *req.mutable_from() = SenderProto();
  *req.mutable_digest() = digest;
  req.set_max_bytes(static_cast<uint32_t>(options_.exchange_max_bytes));
  Run<pb::ExchangeRequest, pb::ExchangeReply>(
      peer.address, peer.node_id, options_.rpc_timeout_ms, std::move(req),
      [](auto* async, auto* ctx, auto* rq, auto* rp, auto cb) {
        async->Exchange(ctx, rq, rp, std::move(cb));
      },
      [this, done = std::move(done)](const grpc::Status& s,
                                     const pb::ExchangeReply& reply) {
        if (s.ok()) ++counters_.exchanges;
        done(ToAbsl(s), reply);
      });
}

void GrpcTransport::Push(const Member& peer, pb::Delta delta, PushDone done) {
  pb::PushRequest req;
  *req.mutable_from() = SenderProto();
  *req.mutable_delta() = std::move(delta);
  const bool compress =
      options_.compress_from_bytes > 0 &&
      req.delta().ByteSizeLong() >= options_.compress_from_bytes;
  if (compress) ++counters_.deltas_gzipped;
  Run<pb::PushRequest, pb::PushReply>(
      peer.address, peer.node_id, options_.rpc_timeout_ms, std::move(req),
      [compress](auto* async, auto* ctx, auto* rq, auto* rp, auto cb) {
        if (compress) ctx->set_compression_algorithm(GRPC_COMPRESS_GZIP);
        async->Push(ctx, rq, rp, std::move(cb));
      },
      [this, done = std::move(done)](const grpc::Status& s,
                                     const pb::PushReply&) {
        if (s.ok()) ++counters_.pushes;
        done(ToAbsl(s));
      });
}

void GrpcTransport::Shutdown() {
  std::set<std::shared_ptr<grpc::ClientContext>> calls;
  {
    absl::MutexLock l(&mu_);
    closed_ = true;
    calls = in_flight_;
  }
  // Outside the lock: a cancelled call may run its callback right here.
  for (const auto& ctx : calls) ctx->TryCancel();
  calls.clear();
  // Every call has a deadline, so this ends; cancelled calls end at once.
  absl::MutexLock l(&mu_);
  mu_.AwaitWithTimeout(
      absl::Condition(
          +[](std::set<std::shared_ptr<grpc::ClientContext>>* s) {
            return s->empty();
          },
          &in_flight_),
      absl::Seconds(30));
  channels_.clear();
}

}  // namespace zm::cluster::internal
