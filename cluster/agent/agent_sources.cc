// The local service's fleet views for admind and `zmailer rates --fleet`:
// the busiest sources (TopSources), the node statuses (PublishNodeStatus,
// FleetStatus) and the agent's statistics (AgentStats).
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <map>

#include "cluster/agent/agent_internal.h"
#include "node/common/strings.h"

namespace zm::cluster::internal {
namespace {

// How often the source book's tracked keys are picked anew.
constexpr int64_t kRetrackMs = 15000;
// How long a key TopSources showed stays tracked.
constexpr int64_t kShownSec = 3600;
constexpr size_t kMaxShown = 1024;
constexpr uint32_t kMaxTop = 1000;
// An unchanged node status is written again only this often.
// An unchanged status is written again this often (its publication time
// shows on the dashboard; every write costs a record sent to every node).
constexpr int64_t kRepublishMs = 10 * 60000;

// "ip4:..." -> "ip", "ip6:.../64" -> "net64", "user:..." -> "user".
std::string_view KindOf(std::string_view key) {
  if (key.starts_with("ip4:")) return "ip";
  if (key.starts_with("ip6:")) return "net64";
  if (key.starts_with("user:")) return "user";
  return "other";
}

}  // namespace

std::pair<int64_t, int64_t> LocalService::Window() const {
  const int64_t slot = std::max(1, options_.state.rate_slot_seconds);
  const int64_t now = UnixMs() / 1000;
  const int64_t end = now - now % slot + slot;
  return {end - slot * std::max(1, options_.state.rate_window_slots), end};
}

void LocalService::NoteForSources(const Changes& changes) {
  const int64_t now_ms = UnixMs();
  if (!changes.policy_winners.empty()) {
    pb::PolicyUpdate u;
    for (const auto& e : changes.policy_winners) *u.add_entries() = e;
    overlay_.Apply(u);
  }
  MaybeRetrack(false);
  if (!changes.rates.empty()) book_.OnRates(changes.rates, now_ms / 1000);
  // Propagation: from a record's time at its origin to its arrival here.
  absl::MutexLock l(&sources_mu_);
  auto note = [&](const std::string& origin, int64_t wall_ms) {
    if (origin == options_.node_id || wall_ms <= 0) return;
    int64_t d = std::max<int64_t>(0, now_ms - wall_ms);
    Propagation& p = propagation_;
    ++p.count;
    p.sum_ms += static_cast<uint64_t>(d);
    p.last_ms = d;
    p.max_ms = std::max(p.max_ms, d);
  };
  for (const auto& e : changes.policy_winners) {
    if (e.has_hlc()) note(e.author_node(), e.hlc().wall_ms());
  }
  for (const auto& s : changes.node_statuses) {
    note(s.node_id(), s.hlc().wall_ms());
  }
}

void LocalService::MaybeRetrack(bool force) {
  const int64_t now_ms = UnixMs();
  int64_t next = next_retrack_ms_.load();
  if (!force && now_ms < next) return;
  if (!next_retrack_ms_.compare_exchange_strong(next, now_ms + kRetrackMs) &&
      !force) {
    return;  // another thread does it
  }
  auto [start, end] = Window();
  std::vector<std::string> keys;
  {
    // Keys shown lately first (most recent first), then the busiest.
    absl::MutexLock l(&sources_mu_);
    std::erase_if(shown_, [&](const auto& e) {
      return e.second + kShownSec < now_ms / 1000;
    });
    std::vector<std::pair<int64_t, std::string>> recent;
    for (const auto& [key, at] : shown_) recent.emplace_back(at, key);
    std::sort(recent.rbegin(), recent.rend());
    for (auto& [at, key] : recent) keys.push_back(key);
  }
  const size_t cap = book_.capacity();
  if (keys.size() < cap) {
    auto busy = [](std::string_view, const RateCounts& c) {
      return c.messages > 0;
    };
    for (RateTotal& t : state_.TopRates(start, cap, "messages", busy)) {
      keys.push_back(std::move(t.key));
    }
  }
  if (keys.size() > cap) keys.resize(cap);
  // The slots of those keys only (the book tracks no others).
  std::vector<pb::RateSlot> window;
  for (const std::string& key : keys) {
    for (pb::RateSlot& s : state_.RatesInWindow(start, key)) {
      window.push_back(std::move(s));
    }
  }
  book_.Track(keys, window, now_ms / 1000);
}

grpc::Status LocalService::TopSources(grpc::ServerContext*,
                                      const pb::TopSourcesRequest* req,
                                      pb::TopSourcesReply* reply) {
  const std::string kind = req->kind().empty() ? "all" : req->kind();
  if (kind != "all" && kind != "ip" && kind != "net64" && kind != "user") {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        StrCat("unknown source kind '", kind, "'"));
  }
  const int64_t now_ms = UnixMs();
  const int64_t now = now_ms / 1000;
  auto [start, end] = Window();
  const size_t limit =
      req->limit() == 0 ? 20 : std::min<uint32_t>(req->limit(), kMaxTop);
  // Totals summed in place in the store (no copy of every slot); the
  // per-node split only for the keys shown.
  std::vector<RateTotal> top = state_.TopRates(
      start, limit, "messages",
      [&](std::string_view key, const RateCounts& c) {
        if (c.messages == 0 && c.auth_failures == 0) return false;
        if (kind != "all" && KindOf(key) != kind) return false;
        return req->filter().empty() ||
               key.find(req->filter()) != std::string_view::npos;
      });
  std::vector<std::string> shown;
  for (const RateTotal& t : top) {
    const std::string& key = t.key;
    const RateCounts& sum = t.counts;
    pb::TopSource* out = reply->add_sources();
    out->set_key(key);
    out->set_kind(std::string(KindOf(key)));
    out->set_count(sum.messages);
    out->set_recipients(sum.recipients);
    out->set_auth_failures(sum.auth_failures);
    std::map<std::string, uint64_t> nodes;
    for (const pb::RateSlot& s : state_.RatesInWindow(start, key)) {
      nodes[s.node_id()] += s.messages();
    }
    for (const auto& [node, n] : nodes) {
      pb::SourceNodeCount* c = out->add_nodes();
      c->set_node_id(node);
      c->set_count(n);
    }
    // Class, limit and state as the smtpserver sees them: its reported
    // limit, overridden by a fleet policy entry for the source.
    std::string rate_class = "default";
    std::string state = "ok";
    std::optional<pb::SourceLimit> reported = book_.Limit(key);
    if (reported) {
      if (!reported->rate_class().empty()) rate_class = reported->rate_class();
      int64_t lim = reported->messages();
      uint64_t abs = static_cast<uint64_t>(lim < 0 ? -lim : lim);
      out->set_limit(abs);
      if (abs != 0 && sum.messages >= abs) state = lim < 0 ? "blocked" : "deferred";
    } else if (sum.excesses > 0) {
      state = "deferred";  // refused for its rate within the window
    }
    std::optional<pb::PolicyEntry> entry;
    std::string_view rest = key;
    if (ConsumePrefix(&rest, "ip4:") || ConsumePrefix(&rest, "ip6:")) {
      auto slash = rest.find('/');
      entry = overlay_.ForIp(rest.substr(0, slash), now_ms);
    } else if (ConsumePrefix(&rest, "user:") &&
               rest.find('@') != std::string_view::npos) {
      entry = overlay_.ForAddress(rest, now_ms);
    }
    if (entry) {
      switch (entry->action()) {
        case pb::POLICY_ACTION_REJECT:
          state = "blocked";
          break;
        case pb::POLICY_ACTION_DEFER:
          state = "deferred";
          break;
        case pb::POLICY_ACTION_ALLOW:
          state = "ok";
          rate_class = "allow";
          out->set_limit(0);
          break;
        case pb::POLICY_ACTION_RATE_CLASS:
          rate_class = entry->rate_class();
          break;
        default:
          break;
      }
    }
    out->set_rate_class(rate_class);
    out->set_state(state);
    for (uint64_t n : book_.Spark(key, now)) out->add_spark(n);
    shown.push_back(key);
  }
  reply->set_window_s(static_cast<uint32_t>(end - start));
  reply->set_now_unix(now);
  reply->set_spark_end_minute_unix(now - now % 60);
  bool fresh = false;
  {
    absl::MutexLock l(&sources_mu_);
    for (const std::string& key : shown) {
      if (!shown_.contains(key)) fresh = true;
      if (shown_.size() < kMaxShown || shown_.contains(key)) shown_[key] = now;
    }
  }
  // A key shown for the first time gets its minutes from now on.
  if (fresh) MaybeRetrack(true);
  return grpc::Status::OK;
}

namespace {

// Whether the newer per-minute history `b` says what the held one `a`
// says, minute by minute from b's first minute on (earlier minutes have
// left every reader's hour): a minute only one of them covers must be 0
// (readers take a missing minute as 0, see admind's fleet history). So an
// idle node's history, which shifts every minute, says nothing new.
bool SameMinutes(const pb::NodeHistory& a, const pb::NodeHistory& b) {
  using Series = google::protobuf::RepeatedField<uint64_t>;
  const std::pair<const Series*, const Series*> series[] = {
      {&a.received(), &b.received()},
      {&a.delivered(), &b.delivered()},
      {&a.deferred(), &b.deferred()},
      {&a.bounced(), &b.bounced()},
      {&a.rejected_policy(), &b.rejected_policy()},
      {&a.rejected_rate(), &b.rejected_rate()}};
  auto at = [](const Series& s, int64_t first, int64_t minute) -> uint64_t {
    const int64_t k = (minute - first) / 60;
    return k >= 0 && k < s.size() ? s.Get(static_cast<int>(k)) : 0;
  };
  for (const auto& [sa, sb] : series) {
    const int64_t from = b.first_minute_unix();
    const int64_t to =
        std::max(a.first_minute_unix() + 60 * int64_t{sa->size()},
                 b.first_minute_unix() + 60 * int64_t{sb->size()});
    // Bounded: a status is at most max_status_bytes, and a gap of more
    // than a day between the two starts is simply "different".
    if (to - from > 86400) return false;
    for (int64_t m = from; m < to; m += 60) {
      if (at(*sa, a.first_minute_unix(), m) !=
          at(*sb, b.first_minute_unix(), m)) {
        return false;
      }
    }
  }
  return true;
}

}  // namespace

grpc::Status LocalService::PublishNodeStatus(
    grpc::ServerContext*, const pb::PublishNodeStatusRequest* req,
    pb::PublishNodeStatusReply* reply) {
  // Gossip cost: a status that says what the stored one says (its
  // publication time aside, its history compared minute by minute) is
  // not written again, unless the stored one is kRepublishMs old. Every
  // write goes to every node of the fleet.
  for (const pb::NodeStatus& held : state_.NodeStatuses()) {
    if (held.node_id() != options_.node_id) continue;
    pb::NodeStatus a = held, b = req->status();
    for (pb::NodeStatus* x : {&a, &b}) {
      x->clear_node_id();
      x->clear_hlc();
      x->clear_version();
      x->clear_updated_unix_ms();
      x->clear_history();
    }
    if (a.SerializeAsString() == b.SerializeAsString() &&
        SameMinutes(held.history(), req->status().history()) &&
        UnixMs() - held.hlc().wall_ms() < kRepublishMs) {
      *reply->mutable_status() = held;
      return grpc::Status::OK;
    }
  }
  auto stored = state_.PublishNodeStatus(req->status());
  if (!stored.ok()) {
    return grpc::Status(static_cast<grpc::StatusCode>(stored.status().code()),
                        std::string(stored.status().message()));
  }
  *reply->mutable_status() = *std::move(stored);
  return grpc::Status::OK;
}

grpc::Status LocalService::FleetStatus(grpc::ServerContext*,
                                       const pb::FleetStatusRequest*,
                                       pb::FleetStatusReply* reply) {
  for (auto& s : state_.NodeStatuses()) *reply->add_statuses() = std::move(s);
  reply->set_node_id(options_.node_id);
  return grpc::Status::OK;
}

grpc::Status LocalService::AgentStats(grpc::ServerContext*,
                                      const pb::AgentStatsRequest*,
                                      pb::AgentStatsReply* reply) {
  reply->set_node_id(options_.node_id);
  reply->set_solo(options_.listen.empty());
  uint32_t by_state[5] = {0, 0, 0, 0, 0};
  for (const MemberView& v : membership_.Members()) {
    int s = static_cast<int>(v.member.state);
    if (s >= 1 && s <= 4) ++by_state[s];
  }
  reply->set_members_alive(by_state[static_cast<int>(MemberState::kAlive)]);
  reply->set_members_suspect(by_state[static_cast<int>(MemberState::kSuspect)]);
  reply->set_members_dead(by_state[static_cast<int>(MemberState::kDead)]);
  reply->set_members_left(by_state[static_cast<int>(MemberState::kLeft)]);
  reply->set_gossip_bytes_sent(counters_.bytes_sent.load());
  reply->set_gossip_bytes_received(counters_.bytes_received.load());
  reply->set_exchanges(counters_.exchanges.load());
  reply->set_pushes(counters_.pushes.load());
  reply->set_records_merged(counters_.records_applied.load());
  reply->set_peers_refused(counters_.peers_refused.load());
  reply->set_etrn_acted(counters_.etrn_acted.load());
  FleetStateStats st = state_.Stats();
  reply->set_records_refused(st.rejected);
  reply->set_rate_slots(st.rate_slots);
  reply->set_policy_entries(st.policies);
  reply->set_node_statuses(st.node_statuses);
  reply->set_uptime_ms(UnixMs() - started_ms_);
  absl::MutexLock l(&sources_mu_);
  reply->set_propagation_count(propagation_.count);
  reply->set_propagation_sum_ms(propagation_.sum_ms);
  reply->set_propagation_last_ms(propagation_.last_ms);
  reply->set_propagation_max_ms(propagation_.max_ms);
  return grpc::Status::OK;
}

}  // namespace zm::cluster::internal
