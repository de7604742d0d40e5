// A fake cluster agent for unit tests: the Local service of local.proto
// in process, on a UNIX socket, with state the test sets and inspects.
// Streams end when the test calls Stop() or the client cancels.
#ifndef ZM_TESTS_UNIT_CLUSTER_CLIENT_FAKE_AGENT_H_
#define ZM_TESTS_UNIT_CLUSTER_CLIENT_FAKE_AGENT_H_

#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "zmnode/cluster/v1/local.grpc.pb.h"

namespace zm::cluster::testing {

namespace v1 = ::zmnode::cluster::v1;

class FakeAgent final : public v1::Local::Service {
 public:
  explicit FakeAgent(std::string socket_path)
      : path_(std::move(socket_path)) {}
  ~FakeAgent() override { Stop(); }

  bool Start() {
    {
      absl::MutexLock l(&mu_);
      stopping_ = false;
    }
    grpc::ServerBuilder b;
    b.AddListeningPort("unix:" + path_, grpc::InsecureServerCredentials());
    b.RegisterService(this);
    server_ = b.BuildAndStart();
    return server_ != nullptr;
  }
  void Stop() {
    if (!server_) return;
    {
      absl::MutexLock l(&mu_);
      stopping_ = true;
    }
    server_->Shutdown(std::chrono::system_clock::now() +
                      std::chrono::seconds(2));
    server_->Wait();
    server_.reset();
  }

  // ---- what the test sets --------------------------------------------------
  void AddPeerSlots(const std::vector<v1::RateSlot>& slots) {
    absl::MutexLock l(&mu_);
    for (const auto& s : slots) peer_slots_.push_back(s);
  }
  void SetEtrnResults(std::vector<v1::EtrnResult> results,
                      std::vector<std::string> pending) {
    absl::MutexLock l(&mu_);
    etrn_results_ = std::move(results);
    etrn_pending_ = std::move(pending);
  }
  // A policy entry as if a peer wrote it.
  void PutPolicy(const v1::PolicyEntry& e) {
    absl::MutexLock l(&mu_);
    policies_[e.subject()] = e;
    changes_.push_back(e);
  }

  // ---- what the test inspects ------------------------------------------------
  std::vector<v1::RateSlot> reported() {
    absl::MutexLock l(&mu_);
    return reported_;
  }
  std::map<std::string, v1::SourceLimit> limits() {
    absl::MutexLock l(&mu_);
    return limits_;
  }
  int report_calls() {
    absl::MutexLock l(&mu_);
    return report_calls_;
  }
  std::vector<std::string> etrn_domains() {
    absl::MutexLock l(&mu_);
    return etrn_domains_;
  }
  std::map<std::string, v1::PolicyEntry> policies() {
    absl::MutexLock l(&mu_);
    return policies_;
  }

  // ---- the service -------------------------------------------------------------
  grpc::Status ReportRates(grpc::ServerContext*,
                           const v1::ReportRatesRequest* req,
                           v1::ReportRatesReply*) override {
    absl::MutexLock l(&mu_);
    ++report_calls_;
    for (const auto& s : req->slots()) reported_.push_back(s);
    for (const auto& l : req->limits()) limits_[l.key()] = l;
    return grpc::Status::OK;
  }

  grpc::Status WatchRates(grpc::ServerContext* ctx,
                          const v1::WatchRatesRequest*,
                          grpc::ServerWriter<v1::RateUpdate>* w) override {
    // The first update (maybe empty) says "open"; then only new slots.
    size_t sent = 0;
    bool first = true;
    for (;;) {
      v1::RateUpdate u;
      {
        absl::MutexLock l(&mu_);
        if (stopping_ || ctx->IsCancelled()) return grpc::Status::CANCELLED;
        for (; sent < peer_slots_.size(); ++sent) {
          *u.add_slots() = peer_slots_[sent];
        }
        if (u.slots_size() == 0 && !first) {
          mu_.AwaitWithTimeout(absl::Condition(&stopping_),
                               absl::Milliseconds(20));
          continue;
        }
      }
      first = false;
      if (!w->Write(u)) return grpc::Status::CANCELLED;
    }
  }

  grpc::Status FleetRates(grpc::ServerContext*, const v1::FleetRatesRequest*,
                          v1::FleetRatesReply* reply) override {
    absl::MutexLock l(&mu_);
    std::map<std::string, v1::FleetRate> by_key;
    auto add = [&](const v1::RateSlot& s) {
      v1::FleetRate& r = by_key[s.key()];
      r.set_key(s.key());
      r.mutable_total()->set_messages(r.total().messages() + s.messages());
      v1::RateSlot* n = nullptr;
      for (auto& p : *r.mutable_per_node()) {
        if (p.node_id() == s.node_id()) n = &p;
      }
      if (n == nullptr) {
        n = r.add_per_node();
        n->set_node_id(s.node_id());
      }
      n->set_messages(n->messages() + s.messages());
    };
    for (const auto& s : reported_) add(s);
    for (const auto& s : peer_slots_) add(s);
    for (auto& [k, r] : by_key) *reply->add_rates() = r;
    return grpc::Status::OK;
  }

  grpc::Status PolicyAdd(grpc::ServerContext*, const v1::PolicyAddRequest* req,
                         v1::PolicyReply* reply) override {
    if (req->subject().empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no subject");
    }
    v1::PolicyEntry e;
    e.set_subject(req->subject());
    e.set_action(req->action());
    e.set_rate_class(req->rate_class());
    e.set_reason(req->reason());
    e.set_author_node("fake");
    if (req->ttl_seconds() > 0) {
      e.set_expires_unix_ms(absl::ToUnixMillis(absl::Now()) +
                            int64_t{req->ttl_seconds()} * 1000);
    }
    PutPolicy(e);
    *reply->add_entries() = e;
    return grpc::Status::OK;
  }

  grpc::Status PolicyDelete(grpc::ServerContext*,
                            const v1::PolicyDeleteRequest* req,
                            v1::PolicyReply* reply) override {
    absl::MutexLock l(&mu_);
    auto it = policies_.find(req->subject());
    if (it == policies_.end()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          "no policy entry for " + req->subject());
    }
    v1::PolicyEntry e = it->second;
    e.set_deleted(true);
    policies_.erase(it);
    changes_.push_back(e);
    *reply->add_entries() = e;
    return grpc::Status::OK;
  }

  grpc::Status PolicyList(grpc::ServerContext*, const v1::PolicyListRequest*,
                          v1::PolicyReply* reply) override {
    absl::MutexLock l(&mu_);
    for (const auto& [s, e] : policies_) *reply->add_entries() = e;
    return grpc::Status::OK;
  }

  grpc::Status WatchPolicy(grpc::ServerContext* ctx,
                           const v1::WatchPolicyRequest*,
                           grpc::ServerWriter<v1::PolicyUpdate>* w) override {
    size_t seen = 0;
    {
      v1::PolicyUpdate snap;
      snap.set_snapshot(true);
      absl::MutexLock l(&mu_);
      for (const auto& [s, e] : policies_) *snap.add_entries() = e;
      seen = changes_.size();
      if (!w->Write(snap)) return grpc::Status::CANCELLED;
    }
    for (;;) {
      v1::PolicyUpdate u;
      {
        absl::MutexLock l(&mu_);
        if (stopping_ || ctx->IsCancelled()) return grpc::Status::CANCELLED;
        for (; seen < changes_.size(); ++seen) *u.add_entries() = changes_[seen];
        if (u.entries_size() == 0) {
          mu_.AwaitWithTimeout(absl::Condition(&stopping_),
                               absl::Milliseconds(20));
          continue;
        }
      }
      if (!w->Write(u)) return grpc::Status::CANCELLED;
    }
  }

  grpc::Status StartEtrn(grpc::ServerContext*, const v1::StartEtrnRequest* req,
                         v1::StartEtrnReply* reply) override {
    absl::MutexLock l(&mu_);
    etrn_domains_.push_back(req->domain());
    reply->mutable_request()->set_id("fake-" +
                                     std::to_string(etrn_domains_.size()));
    reply->mutable_request()->set_domain(req->domain());
    reply->mutable_request()->set_origin_node("fake");
    return grpc::Status::OK;
  }

  grpc::Status EtrnStatus(grpc::ServerContext*,
                          const v1::EtrnStatusRequest* req,
                          v1::EtrnStatusReply* reply) override {
    absl::MutexLock l(&mu_);
    reply->mutable_request()->set_id(req->request_id());
    for (const auto& r : etrn_results_) *reply->add_results() = r;
    for (const auto& p : etrn_pending_) reply->add_pending_nodes(p);
    return grpc::Status::OK;
  }

  grpc::Status Members(grpc::ServerContext*, const v1::MembersRequest*,
                       v1::MembersReply* reply) override {
    reply->set_node_id("fake");
    v1::MemberView* m = reply->add_members();
    m->mutable_member()->set_node_id("fake");
    m->set_self(true);
    return grpc::Status::OK;
  }

 private:
  const std::string path_;
  std::unique_ptr<grpc::Server> server_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<v1::RateSlot> peer_slots_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::RateSlot> reported_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, v1::SourceLimit> limits_ ABSL_GUARDED_BY(mu_);
  int report_calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, v1::PolicyEntry> policies_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::PolicyEntry> changes_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> etrn_domains_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::EtrnResult> etrn_results_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> etrn_pending_ ABSL_GUARDED_BY(mu_);
};

}  // namespace zm::cluster::testing

#endif  // ZM_TESTS_UNIT_CLUSTER_CLIENT_FAKE_AGENT_H_
