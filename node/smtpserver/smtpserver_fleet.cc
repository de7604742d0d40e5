// The fleet link: rate slots out in batches, peers' slots and the policy
// overlay in by streams, over-limit DEFER entries and cluster-wide ETRN.
#include "node/smtpserver/smtpserver_fleet.h"

#include <ctime>
#include <utility>

#include "absl/time/time.h"
#include "node/common/log.h"
#include "node/common/strings.h"

namespace zm::smtpserver {
namespace {

constexpr size_t kMaxPublished = 10000;  // remembered over-limit subjects
constexpr size_t kMaxLimits = 10000;     // remembered per-source limits
constexpr uint32_t kEtrnTtlSec = 3600;   // a node that rejoins still acts

int64_t NowSec() { return static_cast<int64_t>(std::time(nullptr)); }

ratetrack::SlotCount FromProto(const v1::RateSlot& s) {
  ratetrack::SlotCount c;
  c.key = s.key();
  c.node_id = s.node_id();
  c.slot_start = s.slot_start();
  c.counts.messages = s.messages();
  c.counts.recipients = s.recipients();
  c.counts.auth_failures = s.auth_failures();
  c.counts.aborts = s.aborts();
  c.counts.excesses = s.excesses();
  return c;
}

void ToProto(const ratetrack::SlotCount& c, const std::string& node_id,
             v1::RateSlot* s) {
  s->set_key(c.key);
  s->set_node_id(node_id);
  s->set_slot_start(c.slot_start);
  s->set_messages(c.counts.messages);
  s->set_recipients(c.counts.recipients);
  s->set_auth_failures(c.counts.auth_failures);
  s->set_aborts(c.counts.aborts);
  s->set_excesses(c.counts.excesses);
}

// "ip4:192.0.2.7" -> "192.0.2.7", "ip6:2001:db8:1:2::/64" -> the /64;
// user keys have no policy subject.
std::optional<std::string> SubjectOfKey(std::string_view key) {
  if (!ConsumePrefix(&key, "ip4:") && !ConsumePrefix(&key, "ip6:")) {
    return std::nullopt;
  }
  auto s = cluster::ParseSubject(key);
  if (!s.ok()) return std::nullopt;
  return s->text;
}

}  // namespace

std::unique_ptr<FleetLink> FleetLink::Start(
    std::unique_ptr<cluster::ClusterClient> client,
    ratetrack::RateTracker& rates, Logger* log, FleetOptions opts) {
  std::unique_ptr<FleetLink> f(
      new FleetLink(std::move(client), rates, log, std::move(opts)));
  FleetLink* self = f.get();
  f->rate_sub_ = f->client_->WatchRates(
      [self] {
        v1::WatchRatesRequest r;
        r.set_since_unix(NowSec() - self->WindowSeconds());
        return r;
      },
      [self](const v1::RateUpdate& u) { self->MergePeers(u); },
      // A new stream: the agent may have restarted and lost our slots.
      [self] { self->resend_all_.store(true); });
  f->policy_sub_ = f->client_->WatchPolicy(
      [self](const v1::PolicyUpdate& u) { self->overlay_.Apply(u); });
  f->thread_ = std::thread([self] { self->Loop(); });
  return f;
}

FleetLink::FleetLink(std::unique_ptr<cluster::ClusterClient> client,
                     ratetrack::RateTracker& rates, Logger* log,
                     FleetOptions opts)
    : client_(std::move(client)), rates_(rates), log_(log),
      opts_(std::move(opts)) {}

FleetLink::~FleetLink() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
  policy_sub_.reset();
  rate_sub_.reset();
}

int64_t FleetLink::WindowSeconds() const {
  return static_cast<int64_t>(opts_.window.slots) * opts_.window.slot_seconds;
}

void FleetLink::Loop() {
  for (;;) {
    bool stop = false;
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stop_),
                           absl::Milliseconds(opts_.report_interval_ms));
      stop = stop_;
    }
    ReportOnce(stop);
    PublishPending();
    if (stop) return;
  }
}

void FleetLink::ReportOnce(bool final) {
  const int64_t now = NowSec();
  const bool all = resend_all_.exchange(false);
  // Only the keys added to since the last report (the tracker keeps the
  // set), or, after a failure or a new stream, the whole window.
  std::vector<ratetrack::SlotCount> slots = rates_.TakeLocalChanges(now);
  if (all) slots = rates_.LocalSlotsSince(now - WindowSeconds());
  std::vector<v1::SourceLimit> limits;
  {
    absl::MutexLock lock(&mu_);
    if (all) {
      for (const auto& [key, limit] : limits_) limits.push_back(limit);
      limits_pending_.clear();
    } else {
      limits.swap(limits_pending_);
    }
  }
  absl::Status failed;
  const size_t batch = std::max<size_t>(opts_.report_batch, 1);
  for (size_t i = 0; i < std::max(slots.size(), limits.size()) && failed.ok();
       i += batch) {
    v1::ReportRatesRequest req;
    for (size_t j = i; j < std::min(slots.size(), i + batch); ++j) {
      ToProto(slots[j], opts_.node_id, req.add_slots());
    }
    for (size_t j = i; j < std::min(limits.size(), i + batch); ++j) {
      *req.add_limits() = limits[j];
    }
    failed = client_->ReportRates(req);
  }
  if (!failed.ok()) {
    // Everything in the window again once the agent is back.
    resend_all_.store(true);
    if (agent_ok_ && log_ && !final) {
      log_->Warning("", StrCat("fleet: cannot report rates: ",
                               Message(failed), " (retrying)"));
    }
    agent_ok_ = false;
    return;
  }
  if (slots.empty() && limits.empty()) return;
  reports_.fetch_add(1);
  if (!agent_ok_ && log_) log_->Info("", "fleet: reporting rates again");
  agent_ok_ = true;
}

void FleetLink::MergePeers(const v1::RateUpdate& u) {
  std::vector<ratetrack::SlotCount> slots;
  slots.reserve(u.slots_size());
  for (const v1::RateSlot& s : u.slots()) {
    // Our own counts are ours to keep; the agent echoes them at most.
    if (s.node_id() == opts_.node_id) continue;
    slots.push_back(FromProto(s));
  }
  if (!slots.empty()) rates_.MergePeer(slots);
}

void FleetLink::OverLimit(std::string_view rate_key, std::string_view why) {
  if (opts_.defer_over_limit_sec <= 0) return;
  std::optional<std::string> subject = SubjectOfKey(rate_key);
  if (!subject) return;
  const int64_t now = NowSec();
  absl::MutexLock lock(&mu_);
  auto it = published_.find(*subject);
  if (it != published_.end() &&
      now - it->second < opts_.defer_over_limit_sec / 2) {
    return;
  }
  if (published_.size() >= kMaxPublished) {
    std::erase_if(published_, [&](const auto& p) {
      return now - p.second >= opts_.defer_over_limit_sec;
    });
    if (published_.size() >= kMaxPublished) return;
  }
  published_[*subject] = now;
  to_publish_.emplace_back(*subject, std::string(why));
}

void FleetLink::NoteLimit(std::string_view rate_key,
                          std::string_view rate_class, int64_t messages,
                          int64_t recipients) {
  absl::MutexLock lock(&mu_);
  auto it = limits_.find(rate_key);
  if (it != limits_.end() && it->second.rate_class() == rate_class &&
      it->second.messages() == messages &&
      it->second.recipients() == recipients) {
    return;  // reported already
  }
  if (it == limits_.end()) {
    if (limits_.size() >= kMaxLimits) limits_.erase(limits_.begin());
    it = limits_.emplace(std::string(rate_key), v1::SourceLimit()).first;
  }
  v1::SourceLimit& l = it->second;
  l.set_key(std::string(rate_key));
  l.set_rate_class(std::string(rate_class));
  l.set_messages(messages);
  l.set_recipients(recipients);
  if (limits_pending_.size() < kMaxLimits) limits_pending_.push_back(l);
}

void FleetLink::PublishPending() {
  std::vector<std::pair<std::string, std::string>> todo;
  {
    absl::MutexLock lock(&mu_);
    todo.swap(to_publish_);
  }
  for (const auto& [subject, why] : todo) {
    v1::PolicyAddRequest req;
    req.set_subject(subject);
    req.set_action(v1::POLICY_ACTION_DEFER);
    req.set_reason(StrCat("over the fleet rate limit: ", why));
    req.set_ttl_seconds(static_cast<uint32_t>(opts_.defer_over_limit_sec));
    absl::StatusOr<v1::PolicyReply> r = client_->PolicyAdd(req);
    if (!log_) continue;
    if (r.ok()) {
      log_->Info("", StrCat("fleet: published defer ", subject, " for ",
                            opts_.defer_over_limit_sec, "s (", why, ")"));
    } else {
      log_->Warning("", StrCat("fleet: cannot publish defer ", subject, ": ",
                               Message(r.status())));
    }
  }
}

absl::StatusOr<FleetEtrn> FleetLink::Etrn(std::string_view domain) {
  v1::StartEtrnRequest start;
  start.set_domain(std::string(domain));
  start.set_ttl_seconds(kEtrnTtlSec);
  absl::StatusOr<v1::StartEtrnReply> started = client_->StartEtrn(start);
  if (!started.ok()) return started.status();
  FleetEtrn out;
  out.request_id = started->request().id();
  v1::EtrnStatusRequest status;
  status.set_request_id(out.request_id);
  status.set_wait_ms(static_cast<uint32_t>(std::max(0, opts_.etrn_wait_ms)));
  absl::StatusOr<v1::EtrnStatusReply> st = client_->EtrnStatus(status);
  if (!st.ok()) {
    // Started, but no word on the results: every expected node pending.
    out.pending.assign(started->expected_nodes().begin(),
                       started->expected_nodes().end());
    return out;
  }
  out.results.assign(st->results().begin(), st->results().end());
  out.pending.assign(st->pending_nodes().begin(), st->pending_nodes().end());
  return out;
}

}  // namespace zm::smtpserver
