// The peer service (peer.proto): what other cluster agents call. Every
// call first checks that the caller's certificate names the node it
// claims to be; gRPC itself bounds the message size.
#include <grpcpp/grpcpp.h>

#include <algorithm>

#include "cluster/agent/agent_internal.h"
#include "cluster/membership/membership_proto.h"
#include "node/common/strings.h"

namespace zm::cluster::internal {

bool LogLimiter::Allow(const std::string& key) {
  int64_t now = SteadyMs();
  absl::MutexLock l(&mu_);
  if (last_.size() > 1024) last_.clear();
  auto [it, fresh] = last_.emplace(key, now);
  if (!fresh && now - it->second < interval_ms_) return false;
  it->second = now;
  return true;
}

grpc::Status PeerCheck::Check(const grpc::ServerContext& ctx,
                              const std::string& rpc,
                              const std::string& claimed) {
  std::string why;
  if (claimed.empty()) {
    why = "no node id claimed";
  } else if (claimed == options_.node_id) {
    why = "claims to be this node";
  } else if (options_.security.check) {
    if (auto s = options_.security.check(ctx, claimed); !s.ok()) {
      why = std::string(Message(s));
    }
  } else if (options_.security.identity) {
    auto id = options_.security.identity(ctx);
    if (!id.ok()) {
      why = StrCat("no certificate identity (", Message(id.status()), ")");
    } else if (*id != claimed) {
      why = StrCat("certificate names '", *id, "'");
    }
  }
  if (why.empty()) return grpc::Status::OK;
  ++counters_.peers_refused;
  // ServerContext::peer() is not const in this gRPC version.
  std::string peer = const_cast<grpc::ServerContext&>(ctx).peer();
  if (limiter_.Allow(StrCat(peer, "|", claimed, "|", why))) {
    log_.Warning("", StrCat("peer refused: ", rpc, " from ", peer,
                            " claiming node-id '", claimed, "': ", why));
  }
  return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                      StrCat("peer refused: ", why));
}

PeerService::PeerService(const AgentOptions& options, Membership& membership,
                         FleetState& state, AntiEntropy& anti_entropy,
                         PeerCheck& check, Logger& log, Counters& counters)
    : options_(options),
      membership_(membership),
      state_(state),
      anti_entropy_(anti_entropy),
      check_(check),
      log_(log),
      counters_(counters) {}

void PeerService::Count(const google::protobuf::Message& in,
                        const google::protobuf::Message& out) {
  counters_.bytes_received += in.ByteSizeLong();
  counters_.bytes_sent += out.ByteSizeLong();
}

grpc::Status PeerService::Ping(grpc::ServerContext* ctx,
                               const pb::PingRequest* req,
                               pb::PingReply* reply) {
  if (auto s = check_.Check(*ctx, "Ping", req->from().node_id()); !s.ok()) {
    return s;
  }
  auto updates =
      membership_.HandlePing(FromProto(req->from()), FromProto(req->updates()));
  // No address: the prober dialled it (probes are most of an idle
  // fleet's traffic).
  Member self = membership_.Self();
  *reply->mutable_from() = ToProto(Sender{self.node_id, self.generation, ""});
  reply->set_seq(req->seq());
  AppendToProto(updates, reply->mutable_updates());
  reply->set_state_hash(anti_entropy_.MyHash());
  Count(*req, *reply);
  return grpc::Status::OK;
}

grpc::Status PeerService::PingReq(grpc::ServerContext* ctx,
                                  const pb::PingReqRequest* req,
                                  pb::PingReqReply* reply) {
  if (auto s = check_.Check(*ctx, "PingReq", req->from().node_id()); !s.ok()) {
    return s;
  }
  // The membership answers through a callback, possibly on another
  // thread, possibly after we gave up: the slot outlives this call.
  struct Slot {
    absl::Mutex mu;
    bool done ABSL_GUARDED_BY(mu) = false;
    bool acked ABSL_GUARDED_BY(mu) = false;
    std::vector<Member> updates ABSL_GUARDED_BY(mu);
  };
  auto slot = std::make_shared<Slot>();
  int64_t timeout_ms =
      std::clamp<int64_t>(req->timeout_ms(), 1, options_.rpc_timeout_ms);
  membership_.HandlePingReq(FromProto(req->from()), req->target_node_id(),
                            req->target_address(), timeout_ms,
                            FromProto(req->updates()),
                            [slot](bool acked, std::vector<Member> updates) {
                              absl::MutexLock l(&slot->mu);
                              if (slot->done) return;
                              slot->done = true;
                              slot->acked = acked;
                              slot->updates = std::move(updates);
                            });
  absl::MutexLock l(&slot->mu);
  slot->mu.AwaitWithTimeout(absl::Condition(&slot->done),
                            absl::Milliseconds(timeout_ms + 500));
  reply->set_acked(slot->done && slot->acked);
  if (slot->done) AppendToProto(slot->updates, reply->mutable_updates());
  Count(*req, *reply);
  return grpc::Status::OK;
}

grpc::Status PeerService::Join(grpc::ServerContext* ctx,
                               const pb::JoinRequest* req,
                               pb::JoinReply* reply) {
  if (auto s = check_.Check(*ctx, "Join", req->self().node_id()); !s.ok()) {
    return s;
  }
  auto joiner = FromProto(req->self());
  if (!joiner.ok() || joiner->address.empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "join: malformed member record");
  }
  AppendToProto(membership_.HandleJoin(*joiner), reply->mutable_members());
  Count(*req, *reply);
  return grpc::Status::OK;
}

grpc::Status PeerService::Leave(grpc::ServerContext* ctx,
                                const pb::LeaveRequest* req,
                                pb::LeaveReply* reply) {
  if (auto s = check_.Check(*ctx, "Leave", req->self().node_id()); !s.ok()) {
    return s;
  }
  auto leaver = FromProto(req->self());
  if (!leaver.ok()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "leave: malformed member record");
  }
  membership_.HandleLeave(*leaver);
  Count(*req, *reply);
  return grpc::Status::OK;
}

grpc::Status PeerService::Exchange(grpc::ServerContext* ctx,
                                   const pb::ExchangeRequest* req,
                                   pb::ExchangeReply* reply) {
  if (auto s = check_.Check(*ctx, "Exchange", req->from().node_id()); !s.ok()) {
    return s;
  }
  // The caller's cap, within ours (and always room for one record).
  size_t cap = options_.exchange_max_bytes;
  if (req->max_bytes() > 0) cap = std::min<size_t>(cap, req->max_bytes());
  DeltaBatch batch = state_.DeltaFor(req->digest(), cap);
  *reply->mutable_delta() = std::move(batch.delta);
  reply->set_more(batch.more);
  *reply->mutable_digest() = state_.GetDigest();
  for (auto& o : batch.full_resync_origins) {
    reply->add_full_resync_origins(std::move(o));
  }
  if (options_.compress_from_bytes > 0 &&
      reply->delta().ByteSizeLong() >= options_.compress_from_bytes) {
    ctx->set_compression_algorithm(GRPC_COMPRESS_GZIP);
    ++counters_.deltas_gzipped;
  }
  Count(*req, *reply);
  return grpc::Status::OK;
}

void PeerService::NoteRejected(const std::string& from,
                               const Changes& changes) {
  if (changes.rejected == 0) return;
  if (limiter_.Allow(from)) {
    log_.Warning("", StrCat("peer ", from, " sent ", changes.rejected,
                            " malformed records, refused: ",
                            Message(changes.first_rejection)));
  }
}

grpc::Status PeerService::Push(grpc::ServerContext* ctx,
                               const pb::PushRequest* req,
                               pb::PushReply* reply) {
  if (auto s = check_.Check(*ctx, "Push", req->from().node_id()); !s.ok()) {
    return s;
  }
  auto changes = state_.Apply(req->delta());
  if (!changes.ok()) {
    log_.Error("", StrCat("cannot store a delta from ", req->from().node_id(),
                          ": ", Message(changes.status())));
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "state not writable");
  }
  counters_.records_applied += changes->count();
  NoteRejected(req->from().node_id(), *changes);
  Count(*req, *reply);
  return grpc::Status::OK;
}

}  // namespace zm::cluster::internal
