// The local service (local.proto) on run/cluster.sock: the node's own
// programs report rate counts, watch peers' counts and the policy overlay,
// start fleet ETRNs and list members.
#include <grpcpp/grpcpp.h>

#include <algorithm>

#include "cluster/agent/agent_internal.h"
#include "cluster/membership/membership_proto.h"
#include "node/common/strings.h"

namespace zm::cluster::internal {
namespace {

// A stream sends at most this many records per message.
constexpr size_t kChunk = 1000;
// A watcher further behind than this gets a fresh snapshot instead.
constexpr size_t kMaxPending = 100000;
// Bounds of a request.
constexpr size_t kMaxReportSlots = 100000;
constexpr uint32_t kMaxWaitMs = 120000;
constexpr size_t kMaxExpected = 1000;

grpc::Status ToGrpc(const absl::Status& s) {
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()),
                      std::string(s.message()));
}

grpc::Status Invalid(std::string_view what) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(what));
}

void AddCounts(pb::RateSlot* to, const pb::RateSlot& s) {
  to->set_messages(to->messages() + s.messages());
  to->set_recipients(to->recipients() + s.recipients());
  to->set_auth_failures(to->auth_failures() + s.auth_failures());
  to->set_aborts(to->aborts() + s.aborts());
  to->set_excesses(to->excesses() + s.excesses());
}

}  // namespace

LocalService::LocalService(const AgentOptions& options, FleetState& state,
                           Membership& membership, AntiEntropy* anti_entropy,
                           EtrnExecutor& etrn, Logger& log, Counters& counters)
    : options_(options),
      state_(state),
      membership_(membership),
      anti_entropy_(anti_entropy),
      etrn_(etrn),
      log_(log),
      counters_(counters),
      started_ms_(UnixMs()) {
  pb::PolicyUpdate snapshot;
  snapshot.set_snapshot(true);
  for (auto& e : state_.PolicyLive(UnixMs())) {
    *snapshot.add_entries() = std::move(e);
  }
  overlay_.Apply(snapshot);
}

void LocalService::OnChanges(const Changes& changes) {
  NoteForSources(changes);
  absl::MutexLock l(&mu_);
  if (!changes.etrn_results.empty()) ++etrn_results_seen_;
  for (Watcher* w : watchers_) {
    if (w->overflow) continue;
    if (w->rates) {
      for (const auto& s : changes.rates) {
        if (s.node_id() != options_.node_id) w->slots.push_back(s);
      }
      if (w->slots.size() > kMaxPending) {
        w->overflow = true;
        w->slots.clear();
      }
    } else {
      w->entries.insert(w->entries.end(), changes.policy_winners.begin(),
                        changes.policy_winners.end());
      if (w->entries.size() > kMaxPending) {
        w->overflow = true;
        w->entries.clear();
      }
    }
  }
}

void LocalService::Shutdown() {
  absl::MutexLock l(&mu_);
  shutdown_ = true;
}

LocalService::Watcher* LocalService::AddWatcher(bool rates) {
  auto* w = new Watcher;
  w->rates = rates;
  absl::MutexLock l(&mu_);
  watchers_.insert(w);
  return w;
}

void LocalService::RemoveWatcher(Watcher* w) {
  absl::MutexLock l(&mu_);
  watchers_.erase(w);
  delete w;
}

bool LocalService::WaitFor(grpc::ServerContext* ctx, Watcher* w) {
  for (;;) {
    if (ctx->IsCancelled()) return false;
    absl::MutexLock l(&mu_);
    auto ready = [this, w]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return shutdown_ || w->overflow || !w->slots.empty() ||
             !w->entries.empty();
    };
    // Wakes now and then to notice a client that went away.
    mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(500));
    if (shutdown_) return false;
    if (ready()) return true;
  }
}

grpc::Status LocalService::ReportRates(grpc::ServerContext*,
                                       const pb::ReportRatesRequest* req,
                                       pb::ReportRatesReply*) {
  if (static_cast<size_t>(req->slots_size()) > kMaxReportSlots ||
      static_cast<size_t>(req->limits_size()) > kMaxReportSlots) {
    return Invalid("too many slots in one report");
  }
  for (const pb::SourceLimit& limit : req->limits()) {
    if (limit.key().empty() || limit.key().size() > 512) continue;
    book_.SetLimit(limit);
  }
  std::vector<pb::RateSlot> slots(req->slots().begin(), req->slots().end());
  // Only this node's counts come in here, whatever the sender wrote.
  for (auto& s : slots) s.set_node_id(options_.node_id);
  auto changed = state_.PutLocalRates(slots);
  if (!changed.ok()) return ToGrpc(changed.status());
  return grpc::Status::OK;
}

grpc::Status LocalService::WatchRates(
    grpc::ServerContext* ctx, const pb::WatchRatesRequest* req,
    grpc::ServerWriter<pb::RateUpdate>* writer) {
  Watcher* w = AddWatcher(/*rates=*/true);
  auto send = [&](const std::vector<pb::RateSlot>& slots, bool always) {
    pb::RateUpdate u;
    for (const auto& s : slots) {
      if (s.node_id() == options_.node_id) continue;
      *u.add_slots() = s;
      if (static_cast<size_t>(u.slots_size()) >= kChunk) {
        if (!writer->Write(u)) return false;
        u.Clear();
        always = false;
      }
    }
    if (u.slots_size() == 0 && !always) return true;
    return writer->Write(u);
  };
  // First everything in the window (one message at least, so the client
  // knows it is connected), then the changes.
  bool ok = send(state_.RatesInWindow(req->since_unix()), true);
  while (ok && WaitFor(ctx, w)) {
    std::vector<pb::RateSlot> slots;
    bool overflow = false;
    {
      absl::MutexLock l(&mu_);
      slots.swap(w->slots);
      overflow = w->overflow;
      w->overflow = false;
    }
    if (overflow) slots = state_.RatesInWindow(req->since_unix());
    ok = send(slots, false);
  }
  RemoveWatcher(w);
  return grpc::Status::OK;
}

grpc::Status LocalService::FleetRates(grpc::ServerContext*,
                                      const pb::FleetRatesRequest* req,
                                      pb::FleetRatesReply* reply) {
  const std::string field = req->field().empty() ? "messages" : req->field();
  if (field != "messages" && field != "recipients" &&
      field != "auth_failures" && field != "aborts" && field != "excesses") {
    return Invalid(StrCat("unknown field '", field, "'"));
  }
  const int64_t slot = std::max(1, options_.state.rate_slot_seconds);
  const int64_t now = UnixMs() / 1000;
  const int64_t end = now - now % slot + slot;
  const int64_t start = end - slot * std::max(1, options_.state.rate_window_slots);
  size_t limit = req->limit() == 0 ? 20 : std::min<size_t>(req->limit(), 1000);
  // Totals summed in the store (no copy of every slot); slots copied only
  // for the keys answered.
  std::vector<RateTotal> top;
  if (req->key().empty()) {
    top = state_.TopRates(start, limit, field, nullptr);
  } else {
    top.push_back(RateTotal{req->key(), {}});
  }
  for (const RateTotal& t : top) {
    const auto slots = state_.RatesInWindow(start, t.key);
    if (slots.empty()) continue;  // a key asked for and not counted
    pb::FleetRate* r = reply->add_rates();
    r->set_key(t.key);
    std::map<std::string, pb::RateSlot> per_node;
    for (const auto& s : slots) {
      AddCounts(r->mutable_total(), s);
      pb::RateSlot& n = per_node[s.node_id()];
      n.set_node_id(s.node_id());
      n.set_key(s.key());
      AddCounts(&n, s);
    }
    r->mutable_total()->set_key(t.key);
    for (const auto& [node, n] : per_node) *r->add_per_node() = n;
  }
  reply->set_window_start_unix(start);
  reply->set_window_end_unix(end);
  return grpc::Status::OK;
}

grpc::Status LocalService::PolicyAdd(grpc::ServerContext*,
                                     const pb::PolicyAddRequest* req,
                                     pb::PolicyReply* reply) {
  if (req->action() == pb::POLICY_ACTION_UNSPECIFIED ||
      !pb::PolicyAction_IsValid(req->action())) {
    return Invalid("policy add needs an action");
  }
  if (req->action() == pb::POLICY_ACTION_RATE_CLASS &&
      req->rate_class().empty()) {
    return Invalid("a rate-class entry needs its class");
  }
  PolicySpec spec;
  spec.subject = req->subject();
  spec.action = req->action();
  spec.rate_class = req->rate_class();
  spec.reason = req->reason();
  spec.ttl_ms = static_cast<int64_t>(req->ttl_seconds()) * 1000;
  auto entry = state_.PolicyPut(spec);
  if (!entry.ok()) return ToGrpc(entry.status());
  log_.Info("", StrCat("policy add: ", entry->subject(), " ",
                       pb::PolicyAction_Name(entry->action()),
                       entry->rate_class().empty() ? "" : " ",
                       entry->rate_class(), " ttl=", req->ttl_seconds(),
                       "s reason=\"", entry->reason(), "\""));
  *reply->add_entries() = *std::move(entry);
  return grpc::Status::OK;
}

grpc::Status LocalService::PolicyDelete(grpc::ServerContext*,
                                        const pb::PolicyDeleteRequest* req,
                                        pb::PolicyReply* reply) {
  auto subject = NormalizePolicySubject(req->subject());
  if (!subject.ok()) return ToGrpc(subject.status());
  if (!state_.PolicyLookup(*subject, UnixMs())) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        StrCat("no policy entry for ", *subject));
  }
  auto entry = state_.PolicyDelete(*subject);
  if (!entry.ok()) return ToGrpc(entry.status());
  log_.Info("", StrCat("policy del: ", entry->subject()));
  *reply->add_entries() = *std::move(entry);
  return grpc::Status::OK;
}

grpc::Status LocalService::PolicyList(grpc::ServerContext*,
                                      const pb::PolicyListRequest* req,
                                      pb::PolicyReply* reply) {
  // With include_deleted: tombstones and expired entries too (until the
  // horizon drops them), as their winners.
  auto entries = req->include_deleted() ? state_.PolicyAll()
                                        : state_.PolicyLive(UnixMs());
  for (auto& e : entries) *reply->add_entries() = std::move(e);
  return grpc::Status::OK;
}

grpc::Status LocalService::WatchPolicy(
    grpc::ServerContext* ctx, const pb::WatchPolicyRequest*,
    grpc::ServerWriter<pb::PolicyUpdate>* writer) {
  Watcher* w = AddWatcher(/*rates=*/false);
  auto snapshot = [&]() {
    pb::PolicyUpdate u;
    u.set_snapshot(true);
    for (auto& e : state_.PolicyLive(UnixMs())) {
      *u.add_entries() = std::move(e);
    }
    return writer->Write(u);
  };
  bool ok = snapshot();
  while (ok && WaitFor(ctx, w)) {
    std::vector<pb::PolicyEntry> entries;
    bool overflow = false;
    {
      absl::MutexLock l(&mu_);
      entries.swap(w->entries);
      overflow = w->overflow;
      w->overflow = false;
    }
    if (overflow) {
      ok = snapshot();
      continue;
    }
    for (size_t i = 0; ok && i < entries.size(); i += kChunk) {
      pb::PolicyUpdate u;
      for (size_t j = i; j < std::min(entries.size(), i + kChunk); ++j) {
        *u.add_entries() = std::move(entries[j]);
      }
      ok = writer->Write(u);
    }
  }
  RemoveWatcher(w);
  return grpc::Status::OK;
}

std::vector<std::string> LocalService::AliveNodes() const {
  std::vector<std::string> nodes;
  for (const MemberView& v : membership_.Members()) {
    if (v.is_self || v.member.state == MemberState::kAlive) {
      nodes.push_back(v.member.node_id);
    }
  }
  std::sort(nodes.begin(), nodes.end());
  return nodes;
}

grpc::Status LocalService::StartEtrn(grpc::ServerContext*,
                                     const pb::StartEtrnRequest* req,
                                     pb::StartEtrnReply* reply) {
  const std::string& domain = req->domain();
  if (domain.empty() || domain.size() > 255 ||
      domain.find_first_of(" \t\r\n") != std::string::npos) {
    return Invalid("ETRN needs one domain");
  }
  int64_t ttl_ms =
      static_cast<int64_t>(req->ttl_seconds() == 0 ? 3600 : req->ttl_seconds()) *
      1000;
  auto request = state_.StartEtrn(domain, ttl_ms);
  if (!request.ok()) return ToGrpc(request.status());
  std::vector<std::string> expected = AliveNodes();
  {
    absl::MutexLock l(&mu_);
    if (expected_.size() >= kMaxExpected) expected_.erase(expected_.begin());
    expected_[request->id()] = expected;
  }
  log_.Info("", StrCat("ETRN started: id=", request->id(), " domain=", domain,
                       " nodes=", expected.size()));
  etrn_.Enqueue(*request);
  *reply->mutable_request() = *request;
  for (auto& n : expected) reply->add_expected_nodes(std::move(n));
  return grpc::Status::OK;
}

grpc::Status LocalService::EtrnStatus(grpc::ServerContext* ctx,
                                      const pb::EtrnStatusRequest* req,
                                      pb::EtrnStatusReply* reply) {
  const std::string& id = req->request_id();
  const int64_t deadline =
      SteadyMs() + std::min(req->wait_ms(), kMaxWaitMs);
  std::vector<std::string> expected;
  {
    absl::MutexLock l(&mu_);
    auto it = expected_.find(id);
    if (it != expected_.end()) expected = it->second;
  }
  // Started elsewhere, or before a restart: whoever is alive now.
  if (expected.empty()) expected = AliveNodes();
  for (;;) {
    uint64_t seen;
    {
      absl::MutexLock l(&mu_);
      seen = etrn_results_seen_;
    }
    auto results = state_.EtrnResults(id);
    std::optional<pb::EtrnRequest> request;
    for (auto& r : state_.EtrnRequests(UnixMs())) {
      if (r.id() == id) request = std::move(r);
    }
    if (!request && results.empty()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          StrCat("no ETRN request ", id));
    }
    std::set<std::string> answered;
    for (const auto& r : results) answered.insert(r.node_id());
    std::vector<std::string> pending;
    for (const auto& n : expected) {
      if (!answered.count(n)) pending.push_back(n);
    }
    if (pending.empty() || SteadyMs() >= deadline || ctx->IsCancelled()) {
      reply->Clear();
      if (request) *reply->mutable_request() = *request;
      for (auto& r : results) *reply->add_results() = std::move(r);
      for (auto& n : pending) reply->add_pending_nodes(std::move(n));
      return grpc::Status::OK;
    }
    absl::MutexLock l(&mu_);
    auto changed = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return shutdown_ || etrn_results_seen_ != seen;
    };
    mu_.AwaitWithTimeout(
        absl::Condition(&changed),
        absl::Milliseconds(std::clamp<int64_t>(deadline - SteadyMs(), 1, 500)));
    if (shutdown_) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "agent stopping");
    }
  }
}

grpc::Status LocalService::Members(grpc::ServerContext*,
                                   const pb::MembersRequest*,
                                   pb::MembersReply* reply) {
  const int64_t now_unix = UnixMs();
  const int64_t now_steady = SteadyMs();
  std::map<std::string, pb::NodeStatus> statuses;
  for (auto& s : state_.NodeStatuses()) statuses[s.node_id()] = std::move(s);
  for (const MemberView& v : membership_.Members()) {
    pb::MemberView* out = reply->add_members();
    *out->mutable_member() = ToProto(v.member);
    out->set_self(v.is_self);
    out->set_state(std::string(MemberStateName(v.member.state)));
    if (v.member.started_unix_ms > 0) {
      out->set_uptime_ms(std::max<int64_t>(0, now_unix - v.member.started_unix_ms));
    }
    auto st = statuses.find(v.member.node_id);
    if (st != statuses.end()) {
      out->set_admin_url(st->second.admin_url());
      out->set_status_updated_unix_ms(st->second.updated_unix_ms());
    }
    if (v.is_self) {
      out->set_last_contact_unix_ms(now_unix);
      out->set_gossip_lag_ms(0);
      continue;
    }
    if (v.last_contact_ms > 0) {
      out->set_last_contact_unix_ms(now_unix - (now_steady - v.last_contact_ms));
    }
    int64_t synced =
        anti_entropy_ ? anti_entropy_->InSyncAt(v.member.node_id) : 0;
    out->set_gossip_lag_ms(synced > 0 ? now_unix - synced : -1);
  }
  reply->set_node_id(options_.node_id);
  return grpc::Status::OK;
}

}  // namespace zm::cluster::internal
