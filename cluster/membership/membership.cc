#include "cluster/membership/membership.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <utility>

#include "absl/synchronization/mutex.h"

namespace zm::cluster {

std::string_view MemberStateName(MemberState s) {
  switch (s) {
    case MemberState::kAlive:
      return "alive";
    case MemberState::kSuspect:
      return "suspect";
    case MemberState::kDead:
      return "dead";
    case MemberState::kLeft:
      return "left";
  }
  return "unknown";
}

std::string_view MemberEventName(MemberEventType t) {
  switch (t) {
    case MemberEventType::kJoined:
      return "joined";
    case MemberEventType::kSuspect:
      return "suspect";
    case MemberEventType::kAlive:
      return "alive";
    case MemberEventType::kDead:
      return "dead";
    case MemberEventType::kLeft:
      return "left";
  }
  return "unknown";
}

namespace {

constexpr size_t kMaxIdLength = 255;
constexpr size_t kMaxVersionLength = 64;

int Rank(MemberState s) { return static_cast<int>(s); }

bool Valid(const Member& m) {
  return !m.node_id.empty() && m.node_id.size() <= kMaxIdLength &&
         m.address.size() <= kMaxIdLength &&
         m.version.size() <= kMaxVersionLength &&
         m.reporter.size() <= kMaxIdLength && Rank(m.state) >= 1 &&
         Rank(m.state) <= 4;
}

bool Live(MemberState s) {
  return s == MemberState::kAlive || s == MemberState::kSuspect;
}

}  // namespace

class Membership::Impl {
 public:
  Impl(MembershipOptions options, Transport& transport)
      : opts_(std::move(options)), transport_(transport) {
    std::random_device rd;
    const uint64_t seed = opts_.random_seed != 0
                              ? opts_.random_seed
                              : (uint64_t{rd()} << 32) | rd();
    rng_.seed(seed);
    sync_rng_.seed(~seed);
    self_ = opts_.self;
    self_.state = MemberState::kAlive;
    self_.reporter.clear();
    opts_.probe_interval_ms = std::max<int64_t>(opts_.probe_interval_ms, 10);
    opts_.probe_timeout_ms =
        std::clamp<int64_t>(opts_.probe_timeout_ms, 1, opts_.probe_interval_ms);
    opts_.awareness_max = std::max(opts_.awareness_max, 1);
    opts_.suspicion_mult = std::max(opts_.suspicion_mult, 1);
    opts_.suspicion_max_mult = std::max(opts_.suspicion_max_mult, 1);
    opts_.retransmit_mult = std::max(opts_.retransmit_mult, 1);
    opts_.max_piggyback = std::max(opts_.max_piggyback, 1);
    const int64_t now = opts_.clock();
    next_probe_ms_ = now;
    next_gossip_ms_ = now;
    next_dead_probe_ms_ = now + opts_.dead_probe_interval_ms;
    // Our own record goes out first, so whoever we talk to learns of us.
    QueueBroadcast(self_);
  }

  // Side effects collected under the lock and run after it is released.
  struct Outbox {
    std::vector<std::function<void()>> calls;
    std::vector<MemberEvent> events;
  };

  void Flush(Outbox& out) {
    if (opts_.on_event) {
      for (const MemberEvent& e : out.events) opts_.on_event(e);
    }
    for (auto& call : out.calls) call();
  }

  // ---- public entry points (each locks, then flushes) ---------------------

  void Join(std::vector<std::string> seeds) {
    Outbox out;
    {
      absl::MutexLock l(&mu_);
      seeds_ = std::move(seeds);
      JoinLocked(out);
    }
    Flush(out);
  }

  void Tick() {
    Outbox out;
    {
      absl::MutexLock l(&mu_);
      TickLocked(out);
    }
    Flush(out);
  }

  void Leave(std::function<void()> done) {
    Outbox out;
    std::vector<Member> targets;
    {
      absl::MutexLock l(&mu_);
      if (self_.state != MemberState::kLeft) {
        self_.state = MemberState::kLeft;
        self_.reporter = self_.node_id;
        ++self_.incarnation;
        QueueBroadcast(self_);
      }
      targets = PickRandomLive(opts_.leave_fanout, "");
      if (targets.empty()) {
        out.calls.push_back([done = std::move(done)] {
          if (done) done();
        });
      } else {
        auto remaining = std::make_shared<size_t>(targets.size());
        auto shared_done =
            std::make_shared<std::function<void()>>(std::move(done));
        auto remaining_mu = std::make_shared<absl::Mutex>();
        const Member self = self_;
        for (const Member& t : targets) {
          out.calls.push_back([this, t, self, remaining, shared_done,
                               remaining_mu] {
            transport_.SendLeave(t, self, opts_.probe_timeout_ms * 2,
                                 [remaining, shared_done, remaining_mu](bool) {
                                   bool last = false;
                                   {
                                     absl::MutexLock l(remaining_mu.get());
                                     last = --*remaining == 0;
                                   }
                                   if (last && *shared_done) (*shared_done)();
                                 });
          });
        }
      }
    }
    Flush(out);
  }

  std::vector<Member> HandlePing(const Sender& from,
                                 std::vector<Member> updates) {
    Outbox out;
    std::vector<Member> reply;
    {
      absl::MutexLock l(&mu_);
      ++stats_.pings_answered;
      ApplyAll(updates, out);
      Contact(from);
      reply = Piggyback(from.node_id);
    }
    Flush(out);
    return reply;
  }

  void HandlePingReq(const Sender& from, const std::string& target_node_id,
                     const std::string& target_address, int64_t timeout_ms,
                     std::vector<Member> updates, PingReqReply reply) {
    Outbox out;
    {
      absl::MutexLock l(&mu_);
      ApplyAll(updates, out);
      Contact(from);
      Member target;
      if (const auto it = members_.find(target_node_id); it != members_.end()) {
        target = it->second.m;
      } else {
        target.node_id = target_node_id;
      }
      if (!target_address.empty()) target.address = target_address;
      // Answer (a nack) before the asker gives up on us.
      const int64_t timeout = std::max<int64_t>(1, timeout_ms * 4 / 5);
      const uint64_t seq = ++seq_;
      std::vector<Member> piggy = Piggyback(target.node_id);
      const std::string asker = from.node_id;
      out.calls.push_back([this, target, seq, piggy = std::move(piggy), timeout,
                           asker, reply = std::move(reply)] {
        transport_.SendPing(
            target, seq, piggy, timeout,
            [this, target_id = target.node_id, asker, reply](
                bool acked, std::vector<Member> target_updates) {
              Outbox out2;
              std::vector<Member> back;
              {
                absl::MutexLock l(&mu_);
                if (acked) {
                  ApplyAll(target_updates, out2);
                  ContactId(target_id);
                }
                back = Piggyback(asker);
              }
              Flush(out2);
              reply(acked, std::move(back));
            });
      });
    }
    Flush(out);
  }

  std::vector<Member> HandleJoin(const Member& joiner) {
    Outbox out;
    std::vector<Member> view;
    {
      absl::MutexLock l(&mu_);
      Member m = joiner;
      m.state = MemberState::kAlive;
      m.reporter.clear();
      ApplyUpdate(m, out);
      ContactId(m.node_id);
      view.reserve(members_.size() + 1);
      view.push_back(self_);
      for (const auto& [id, e] : members_) view.push_back(e.m);
    }
    Flush(out);
    return view;
  }

  void HandleLeave(const Member& leaver) {
    Outbox out;
    {
      absl::MutexLock l(&mu_);
      Member m = leaver;
      m.state = MemberState::kLeft;
      m.reporter = m.node_id;
      ApplyUpdate(m, out);
    }
    Flush(out);
  }

  std::vector<MemberView> Members() const {
    absl::MutexLock l(&mu_);
    std::vector<MemberView> v;
    v.reserve(members_.size() + 1);
    v.push_back({self_, true, opts_.clock(), started_ms_});
    for (const auto& [id, e] : members_) {
      v.push_back({e.m, false, e.last_contact_ms, e.state_since_ms});
    }
    return v;
  }

  size_t LiveCount() const {
    absl::MutexLock l(&mu_);
    return LiveCountLocked();
  }

  Member Self() const {
    absl::MutexLock l(&mu_);
    return self_;
  }

  MembershipStats Stats() const {
    absl::MutexLock l(&mu_);
    MembershipStats s = stats_;
    s.awareness = awareness_;
    return s;
  }

 private:
  struct Entry {
    Member m;
    int64_t last_contact_ms = 0;
    int64_t state_since_ms = 0;
    // Suspicion (state kSuspect): when it started, who reported it (the
    // first reporter and each independent confirmation), its deadline.
    int64_t suspect_start_ms = 0;
    int64_t suspect_deadline_ms = 0;
    int64_t suspect_min_ms = 0;
    int64_t suspect_max_ms = 0;
    int expected_confirmations = 0;
    std::set<std::string> reporters;
    // We probed it since it became suspect (see NextProbeTarget).
    bool probed_as_suspect = false;
    int64_t announced_ms = 0;  // last time we queued the suspicion
  };

  struct Pending {
    Member m;
    int transmits = 0;
  };

  // The probe of the current protocol period.
  struct Probe {
    bool active = false;
    uint64_t seq = 0;
    std::string target;
    uint64_t generation = 0;
    int64_t deadline_ms = 0;
    int expected_nacks = 0;
    int nacks = 0;
    int outstanding = 0;
  };

  int64_t Scaled(int64_t ms) const { return ms * (awareness_ + 1); }

  void AdjustAwareness(int delta) {
    awareness_ = std::clamp(awareness_ + delta, 0, opts_.awareness_max - 1);
  }

  size_t LiveCountLocked() const {
    size_t n = self_.state == MemberState::kLeft ? 0 : 1;
    for (const auto& [id, e] : members_) n += Live(e.m.state) ? 1 : 0;
    return n;
  }

  int RetransmitLimit() const {
    const double n = static_cast<double>(LiveCountLocked());
    return opts_.retransmit_mult *
           std::max(1, static_cast<int>(std::ceil(std::log10(n + 1))));
  }

  void QueueBroadcast(const Member& m) { pending_[m.node_id] = {m, 0}; }

  // Up to max_piggyback pending updates, least sent first; the record about
  // `buddy` (the peer the message goes to) first when we think it suspect
  // or dead, so it can refute at once (Lifeguard's buddy system).
  std::vector<Member> Piggyback(const std::string& buddy) {
    std::vector<Member> out;
    const size_t max = static_cast<size_t>(opts_.max_piggyback);
    if (!buddy.empty()) {
      const auto it = members_.find(buddy);
      if (it != members_.end() &&
          (it->second.m.state == MemberState::kSuspect ||
           it->second.m.state == MemberState::kDead)) {
        out.push_back(it->second.m);
      }
    }
    if (pending_.empty()) return out;
    std::vector<std::map<std::string, Pending>::iterator> order;
    order.reserve(pending_.size());
    for (auto it = pending_.begin(); it != pending_.end(); ++it) {
      order.push_back(it);
    }
    const size_t take = std::min(order.size(), max - std::min(max, out.size()));
    std::partial_sort(order.begin(), order.begin() + take, order.end(),
                      [](const auto& a, const auto& b) {
                        return a->second.transmits < b->second.transmits;
                      });
    const int limit = RetransmitLimit();
    for (size_t i = 0; i < take; ++i) {
      auto it = order[i];
      if (!out.empty() && out.front().node_id == it->first &&
          out.front() == it->second.m) {
        // Already there as the buddy record.
      } else {
        out.push_back(it->second.m);
      }
      if (++it->second.transmits >= limit) pending_.erase(it);
    }
    stats_.updates_sent += out.size();
    return out;
  }

  void Contact(const Sender& from) {
    const auto it = members_.find(from.node_id);
    if (it != members_.end() && it->second.m.generation == from.generation) {
      it->second.last_contact_ms = opts_.clock();
    }
  }

  void ContactId(const std::string& id) {
    const auto it = members_.find(id);
    if (it != members_.end()) it->second.last_contact_ms = opts_.clock();
  }

  void Emit(Outbox& out, MemberEventType type, const Member& m,
            uint64_t previous_generation = 0) {
    if (type == MemberEventType::kSuspect) ++stats_.suspect_transitions;
    if (type == MemberEventType::kDead) ++stats_.dead_transitions;
    out.events.push_back({type, m, previous_generation});
  }

  void ApplyAll(const std::vector<Member>& updates, Outbox& out) {
    const size_t n = std::min(updates.size(), opts_.max_inbound_updates);
    for (size_t i = 0; i < n; ++i) ApplyUpdate(updates[i], out);
  }

  // A rumour about us: refute it by raising our incarnation.
  void ApplyAboutSelf(const Member& u) {
    if (u.generation < self_.generation) {
      // About an earlier start of ours: make sure our current record
      // travels, it replaces the old one everywhere.
      if (u.state != MemberState::kAlive && !pending_.contains(self_.node_id)) {
        QueueBroadcast(self_);
      }
      return;
    }
    if (u.generation > self_.generation) {
      ++stats_.rejected_updates;  // someone else runs with our node id
      return;
    }
    if (self_.state == MemberState::kLeft || u.state == MemberState::kAlive) {
      return;
    }
    if (u.incarnation < self_.incarnation) {
      // Already refuted, but whoever sent this has not heard yet (the
      // refutation ran out of retransmits before reaching it).
      if (!pending_.contains(self_.node_id)) QueueBroadcast(self_);
      return;
    }
    self_.incarnation = u.incarnation + 1;
    ++stats_.refutations;
    AdjustAwareness(1);
    QueueBroadcast(self_);
  }

  void StartSuspicion(Entry& e, const std::string& reporter, int64_t now) {
    const double n = static_cast<double>(LiveCountLocked());
    const double scale = std::max(1.0, std::log10(std::max(n, 1.0)));
    if (opts_.suspicion_max_ms > 0) {
      e.suspect_min_ms = static_cast<int64_t>(
          scale * static_cast<double>(opts_.suspicion_min_ms));
      e.suspect_max_ms = std::max(
          e.suspect_min_ms,
          static_cast<int64_t>(scale *
                               static_cast<double>(opts_.suspicion_max_ms)));
    } else {
      e.suspect_min_ms = std::max(
          opts_.suspicion_min_ms,
          static_cast<int64_t>(opts_.suspicion_mult * scale *
                               static_cast<double>(opts_.probe_interval_ms)));
      e.suspect_max_ms = opts_.suspicion_max_mult * e.suspect_min_ms;
    }
    int k = opts_.suspicion_mult - 2;
    if (n - 2 < k) k = 0;
    e.expected_confirmations = std::max(k, 0);
    e.suspect_start_ms = now;
    e.reporters.clear();
    e.reporters.insert(reporter);
    e.probed_as_suspect = reporter == self_.node_id;
    e.announced_ms = now;
    UpdateSuspicionDeadline(e);
  }

  // Lifeguard: timeout = max(min, max - (max - min) * log(c + 1) / log(k + 1))
  // for c independent confirmations out of k expected.
  void UpdateSuspicionDeadline(Entry& e) {
    int64_t timeout = e.suspect_min_ms;
    if (e.expected_confirmations > 0) {
      const double c = static_cast<double>(e.reporters.size() - 1);
      const double frac =
          std::log(c + 1) /
          std::log(static_cast<double>(e.expected_confirmations) + 1);
      timeout = std::max<int64_t>(
          e.suspect_min_ms,
          e.suspect_max_ms - static_cast<int64_t>(
                                 frac * static_cast<double>(e.suspect_max_ms -
                                                            e.suspect_min_ms)));
    }
    e.suspect_deadline_ms = e.suspect_start_ms + timeout;
  }

  void InsertProbeOrder(const std::string& id) {
    probe_order_.push_back(id);
    if (probe_index_ < probe_order_.size()) {
      std::uniform_int_distribution<size_t> d(probe_index_,
                                              probe_order_.size() - 1);
      std::swap(probe_order_.back(), probe_order_[d(rng_)]);
    }
  }

  void EmitForState(Outbox& out, const Member& m, uint64_t prev_gen,
                    MemberState old) {
    switch (m.state) {
      case MemberState::kAlive:
        if (prev_gen != 0 || old == MemberState::kAlive) {
          Emit(out, MemberEventType::kJoined, m, prev_gen);
        } else {
          Emit(out, MemberEventType::kAlive, m);
        }
        break;
      case MemberState::kSuspect:
        Emit(out, MemberEventType::kSuspect, m);
        break;
      case MemberState::kDead:
        Emit(out, MemberEventType::kDead, m);
        break;
      case MemberState::kLeft:
        Emit(out, MemberEventType::kLeft, m);
        break;
    }
  }

  void ApplyUpdate(const Member& u, Outbox& out) {
    if (!Valid(u)) {
      ++stats_.rejected_updates;
      return;
    }
    if (u.node_id == self_.node_id) {
      ApplyAboutSelf(u);
      return;
    }
    const int64_t now = opts_.clock();
    auto it = members_.find(u.node_id);
    if (it == members_.end()) {
      // Rumours of the death of strangers are not news.
      if (u.state != MemberState::kAlive) return;
      Entry& e = members_[u.node_id];
      e.m = u;
      e.m.reporter.clear();
      e.state_since_ms = now;
      InsertProbeOrder(u.node_id);
      Emit(out, MemberEventType::kJoined, e.m);
      QueueBroadcast(e.m);
      return;
    }
    Entry& e = it->second;
    if (u.generation < e.m.generation) return;
    if (u.generation > e.m.generation) {
      // The member restarted: its new self replaces the old one.
      const uint64_t prev = e.m.generation;
      e.m = u;
      e.state_since_ms = now;
      e.reporters.clear();
      if (u.state == MemberState::kSuspect) StartSuspicion(e, u.reporter, now);
      if (u.state == MemberState::kAlive) {
        Emit(out, MemberEventType::kJoined, e.m, prev);
      } else {
        EmitForState(out, e.m, prev, u.state);
      }
      QueueBroadcast(e.m);
      return;
    }
    if (u.incarnation < e.m.incarnation) {
      // A stale accusation: its sender missed the refutation, whose
      // retransmits may be spent. Send the refutation around again (our
      // replies carry it straight back to the sender).
      if (u.state != MemberState::kAlive && e.m.state == MemberState::kAlive &&
          !pending_.contains(u.node_id)) {
        QueueBroadcast(e.m);
      }
      return;
    }
    if (u.incarnation == e.m.incarnation) {
      if (Rank(u.state) < Rank(e.m.state)) return;
      if (Rank(u.state) == Rank(e.m.state)) {
        if (u.state == MemberState::kSuspect && !u.reporter.empty() &&
            !e.reporters.contains(u.reporter)) {
          // An independent confirmation shortens the suspicion.
          e.reporters.insert(u.reporter);
          UpdateSuspicionDeadline(e);
          QueueBroadcast(u);
        }
        return;
      }
    }
    const MemberState old = e.m.state;
    e.m.incarnation = u.incarnation;
    e.m.state = u.state;
    e.m.reporter = u.state == MemberState::kAlive ? "" : u.reporter;
    if (u.state == MemberState::kAlive) {
      if (!u.address.empty()) e.m.address = u.address;
      if (!u.version.empty()) e.m.version = u.version;
    }
    if (old != u.state) e.state_since_ms = now;
    if (u.state == MemberState::kSuspect) StartSuspicion(e, u.reporter, now);
    if (old != u.state) EmitForState(out, e.m, 0, old);
    QueueBroadcast(e.m);
  }

  // Our own probe failed: we are the reporter.
  void Suspect(const std::string& id, uint64_t generation, Outbox& out) {
    const auto it = members_.find(id);
    if (it == members_.end() || it->second.m.generation != generation ||
        !Live(it->second.m.state)) {
      return;
    }
    Member s = it->second.m;
    s.state = MemberState::kSuspect;
    s.reporter = self_.node_id;
    ApplyUpdate(s, out);
  }

  std::vector<Member> PickRandomLive(int k, const std::string& exclude) {
    std::vector<const Member*> c;
    for (const auto& [id, e] : members_) {
      if (e.m.state == MemberState::kAlive && id != exclude) c.push_back(&e.m);
    }
    std::vector<Member> out;
    const size_t want = std::min(c.size(), static_cast<size_t>(std::max(k, 0)));
    for (size_t i = 0; i < want; ++i) {
      std::uniform_int_distribution<size_t> d(i, c.size() - 1);
      std::swap(c[i], c[d(rng_)]);
      out.push_back(*c[i]);
    }
    return out;
  }

  // Merges a peer's whole view (a Join answer). `counted`: count the
  // members it taught us (a full sync).
  void MergeView(const std::vector<Member>& view, bool counted, Outbox& out) {
    for (Member m : view) {
      const bool known = members_.contains(m.node_id);
      // A peer's suspicion is its own business; dead entries of its view
      // are not taken over.
      if (m.state == MemberState::kSuspect && !known) {
        m.state = MemberState::kAlive;
        m.reporter.clear();
      }
      ApplyUpdate(m, out);
      if (counted && !known && members_.contains(m.node_id)) {
        ++stats_.full_sync_learnt;
      }
    }
  }

  // A Join to `target` (a seed address, or a member for a full sync); its
  // answer is merged.
  void SendJoinTo(const std::string& address, const Member* member,
                  Outbox& out) {
    const Member self = self_;
    const bool counted = member != nullptr;
    Transport::JoinDone done = [this, counted](absl::StatusOr<std::vector<Member>> view) {
      if (!view.ok()) return;
      Outbox out2;
      {
        absl::MutexLock l(&mu_);
        MergeView(*view, counted, out2);
      }
      Flush(out2);
    };
    if (member != nullptr) {
      out.calls.push_back([this, target = *member, self,
                           done = std::move(done)]() mutable {
        transport_.SendFullSync(target, self, opts_.join_timeout_ms,
                                std::move(done));
      });
    } else {
      out.calls.push_back(
          [this, address, self, done = std::move(done)]() mutable {
            transport_.SendJoin(address, self, opts_.join_timeout_ms,
                                std::move(done));
          });
    }
  }

  void JoinLocked(Outbox& out) {
    last_join_ms_ = opts_.clock();
    for (const std::string& seed : seeds_) {
      if (seed.empty() || seed == self_.address) continue;
      SendJoinTo(seed, nullptr, out);
    }
  }

  // The full-sync interval for the current fleet size.
  int64_t FullSyncInterval() const {
    const double n = static_cast<double>(LiveCountLocked());
    int64_t scale = 1;
    if (n > 32) scale += static_cast<int64_t>(std::ceil(std::log2(n / 32)));
    return opts_.full_sync_interval_ms * scale;
  }

  // Push-pull with one random live member: our record there, its view
  // here.
  void FullSync(Outbox& out) {
    const std::vector<Member> peer = PickRandomLive(1, "");
    if (peer.empty() || peer.front().address.empty()) return;
    ++stats_.full_syncs;
    SendJoinTo("", &peer.front(), out);
  }

  void TickLocked(Outbox& out) {
    const int64_t now = opts_.clock();
    Reap(now);
    if (self_.state == MemberState::kLeft) return;

    for (auto& [id, e] : members_) {
      if (e.m.state != MemberState::kSuspect) continue;
      if (now >= e.suspect_deadline_ms) {
        Member d = e.m;
        d.state = MemberState::kDead;
        d.reporter = self_.node_id;
        ApplyUpdate(d, out);
        // A death goes out in this tick's gossip, not the next one.
        next_gossip_ms_ = now;
      } else if (now - e.announced_ms >= 2 * opts_.probe_interval_ms &&
                 !pending_.contains(id)) {
        // Say it again while it lasts: a peer that holds the refutation
        // answers a stale accusation with it (see ApplyUpdate), so a
        // refutation that passed us by still reaches us before the timer.
        e.announced_ms = now;
        QueueBroadcast(e.m);
      }
    }

    if (probe_.active && now >= probe_.deadline_ms + opts_.probe_timeout_ms) {
      FinishProbe(false, out);  // the transport never answered
    }
    if (!probe_.active && now >= next_probe_ms_) StartProbe(now, out);

    if (now >= next_gossip_ms_) {
      next_gossip_ms_ = now + opts_.gossip_interval_ms;
      if (!pending_.empty()) Gossip(out);
    }
    if (now >= next_dead_probe_ms_) {
      next_dead_probe_ms_ = now + opts_.dead_probe_interval_ms;
      ProbeDead(out);
    }
    if (opts_.full_sync_interval_ms > 0 && now >= next_full_sync_ms_) {
      // None at the first tick: the first one an interval after the start.
      // Each comes up to a quarter interval early, so a fleet started
      // together does not sync in step. (The jitter has its own generator:
      // the protocol's other random choices stay those of a node without
      // full sync.)
      if (next_full_sync_ms_ != 0) FullSync(out);
      std::uniform_int_distribution<int64_t> jitter(0, FullSyncInterval() / 4);
      next_full_sync_ms_ = now + FullSyncInterval() - jitter(sync_rng_);
    }
    if (!seeds_.empty() && LiveCountLocked() <= 1 &&
        now - last_join_ms_ >= opts_.rejoin_interval_ms) {
      JoinLocked(out);
    }
  }

  void Reap(int64_t now) {
    for (auto it = members_.begin(); it != members_.end();) {
      const Entry& e = it->second;
      if (!Live(e.m.state) && now - e.state_since_ms >= opts_.reap_after_ms) {
        pending_.erase(it->first);
        it = members_.erase(it);
      } else {
        ++it;
      }
    }
  }

  // The next member in this round's shuffled order, or nullptr.
  Entry* NextProbeTarget() {
    // A member we newly hold suspect goes first, once: the ping tells it
    // (buddy system), and if it is really gone our failed probe is an
    // independent confirmation, which is what shortens the suspicion. It
    // also repairs a stale suspicion whose refutation passed us by: the
    // member answers a stale accusation with its current record.
    for (auto& [id, e] : members_) {
      if (e.m.state == MemberState::kSuspect && !e.probed_as_suspect) {
        e.probed_as_suspect = true;
        return &e;
      }
    }
    for (int pass = 0; pass < 2; ++pass) {
      while (probe_index_ < probe_order_.size()) {
        const auto it = members_.find(probe_order_[probe_index_++]);
        if (it != members_.end() && Live(it->second.m.state)) {
          return &it->second;
        }
      }
      // A new round: everyone alive or suspect, in a fresh random order.
      probe_order_.clear();
      probe_index_ = 0;
      for (const auto& [id, e] : members_) {
        if (Live(e.m.state)) probe_order_.push_back(id);
      }
      std::shuffle(probe_order_.begin(), probe_order_.end(), rng_);
    }
    return nullptr;
  }

  void StartProbe(int64_t now, Outbox& out) {
    next_probe_ms_ = now + Scaled(opts_.probe_interval_ms);
    Entry* target = NextProbeTarget();
    if (target == nullptr) return;
    ++stats_.probes;
    probe_ = Probe{};
    probe_.active = true;
    probe_.seq = ++seq_;
    probe_.target = target->m.node_id;
    probe_.generation = target->m.generation;
    probe_.deadline_ms = now + Scaled(opts_.probe_interval_ms);
    probe_.outstanding = 1;
    const Member t = target->m;
    const uint64_t seq = probe_.seq;
    std::vector<Member> piggy = Piggyback(t.node_id);
    const int64_t timeout = Scaled(opts_.probe_timeout_ms);
    out.calls.push_back([this, t, seq, piggy = std::move(piggy), timeout] {
      transport_.SendPing(t, seq, piggy, timeout,
                          [this, seq](bool acked, std::vector<Member> upd) {
                            OnDirectDone(seq, acked, std::move(upd));
                          });
    });
  }

  void OnDirectDone(uint64_t seq, bool acked, std::vector<Member> updates) {
    Outbox out;
    {
      absl::MutexLock l(&mu_);
      if (acked) ApplyAll(updates, out);
      if (probe_.active && probe_.seq == seq) {
        --probe_.outstanding;
        if (acked) {
          ++stats_.probe_acks;
          ContactId(probe_.target);
          AdjustAwareness(-1);
          FinishProbe(true, out);
        } else {
          StartIndirect(out);
        }
      }
    }
    Flush(out);
  }

  void StartIndirect(Outbox& out) {
    const auto it = members_.find(probe_.target);
    if (it == members_.end()) {
      probe_.active = false;
      return;
    }
    ++stats_.indirect_probes;
    const Member target = it->second.m;
    std::vector<Member> vias =
        PickRandomLive(opts_.indirect_checks, target.node_id);
    if (vias.empty()) {
      FinishProbe(false, out);
      return;
    }
    const int64_t timeout =
        std::max<int64_t>(1, probe_.deadline_ms - opts_.clock());
    probe_.expected_nacks = static_cast<int>(vias.size());
    probe_.outstanding += static_cast<int>(vias.size());
    const uint64_t seq = probe_.seq;
    for (const Member& via : vias) {
      std::vector<Member> piggy = Piggyback(via.node_id);
      out.calls.push_back(
          [this, via, target, seq, piggy = std::move(piggy), timeout] {
            transport_.SendPingReq(
                via, target, seq, piggy, timeout,
                [this, seq, via_id = via.node_id](bool replied, bool acked,
                                                  std::vector<Member> upd) {
                  OnIndirectDone(seq, via_id, replied, acked, std::move(upd));
                });
          });
    }
  }

  void OnIndirectDone(uint64_t seq, const std::string& via, bool replied,
                      bool acked, std::vector<Member> updates) {
    Outbox out;
    {
      absl::MutexLock l(&mu_);
      if (replied) {
        ApplyAll(updates, out);
        ContactId(via);
      }
      if (probe_.active && probe_.seq == seq) {
        --probe_.outstanding;
        if (acked) {
          ++stats_.probe_acks;
          ContactId(probe_.target);
          FinishProbe(true, out);
        } else {
          if (replied) ++probe_.nacks;
          if (probe_.outstanding <= 0) FinishProbe(false, out);
        }
      }
    }
    Flush(out);
  }

  void FinishProbe(bool ok, Outbox& out) {
    if (!probe_.active) return;
    probe_.active = false;
    if (ok) return;
    ++stats_.probe_failures;
    // Missed nacks mean the trouble may be ours: slow down (Lifeguard's
    // local health multiplier). With nobody to nack, any failure counts.
    if (probe_.expected_nacks > 0) {
      AdjustAwareness(std::max(0, probe_.expected_nacks - probe_.nacks));
    } else {
      AdjustAwareness(1);
    }
    Suspect(probe_.target, probe_.generation, out);
  }

  void Gossip(Outbox& out) {
    for (const Member& t : PickRandomLive(opts_.gossip_fanout, "")) {
      std::vector<Member> piggy = Piggyback(t.node_id);
      if (piggy.empty()) break;
      const uint64_t seq = ++seq_;
      const int64_t timeout = Scaled(opts_.probe_timeout_ms);
      out.calls.push_back([this, t, seq, piggy = std::move(piggy), timeout] {
        transport_.SendPing(
            t, seq, piggy, timeout,
            [this, id = t.node_id](bool acked, std::vector<Member> upd) {
              OnSideReply(id, acked, std::move(upd));
            });
      });
    }
  }

  // A member we think dead may be back (a healed partition): ping one now
  // and then, carrying its death notice so it refutes.
  void ProbeDead(Outbox& out) {
    std::vector<const Member*> dead;
    for (const auto& [id, e] : members_) {
      if (e.m.state == MemberState::kDead) dead.push_back(&e.m);
    }
    if (dead.empty()) return;
    std::uniform_int_distribution<size_t> d(0, dead.size() - 1);
    const Member t = *dead[d(rng_)];
    std::vector<Member> piggy = Piggyback(t.node_id);
    // Our own record too: it may think us dead as well.
    piggy.push_back(self_);
    const uint64_t seq = ++seq_;
    const int64_t timeout = Scaled(opts_.probe_timeout_ms);
    out.calls.push_back([this, t, seq, piggy = std::move(piggy), timeout] {
      transport_.SendPing(
          t, seq, piggy, timeout,
          [this, id = t.node_id](bool acked, std::vector<Member> upd) {
            OnSideReply(id, acked, std::move(upd));
          });
    });
  }

  void OnSideReply(const std::string& id, bool acked,
                   std::vector<Member> updates) {
    if (!acked) return;
    Outbox out;
    {
      absl::MutexLock l(&mu_);
      ApplyAll(updates, out);
      ContactId(id);
    }
    Flush(out);
  }

  MembershipOptions opts_;
  Transport& transport_;
  const int64_t started_ms_ = opts_.clock();

  mutable absl::Mutex mu_;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
  std::mt19937_64 sync_rng_ ABSL_GUARDED_BY(mu_);  // full-sync timing
  Member self_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Entry> members_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Pending> pending_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> probe_order_ ABSL_GUARDED_BY(mu_);
  size_t probe_index_ ABSL_GUARDED_BY(mu_) = 0;
  Probe probe_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> seeds_ ABSL_GUARDED_BY(mu_);
  uint64_t seq_ ABSL_GUARDED_BY(mu_) = 0;
  int awareness_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t next_probe_ms_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t next_gossip_ms_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t next_dead_probe_ms_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t last_join_ms_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t next_full_sync_ms_ ABSL_GUARDED_BY(mu_) = 0;
  MembershipStats stats_ ABSL_GUARDED_BY(mu_);
};

Membership::Membership(MembershipOptions options, Transport& transport)
    : impl_(std::make_unique<Impl>(std::move(options), transport)) {}
Membership::~Membership() = default;

void Membership::Join(std::vector<std::string> seeds) {
  impl_->Join(std::move(seeds));
}
void Membership::Tick() { impl_->Tick(); }
void Membership::Leave(std::function<void()> done) {
  impl_->Leave(std::move(done));
}
std::vector<Member> Membership::HandlePing(const Sender& from,
                                           std::vector<Member> updates) {
  return impl_->HandlePing(from, std::move(updates));
}
void Membership::HandlePingReq(const Sender& from,
                               const std::string& target_node_id,
                               const std::string& target_address,
                               int64_t timeout_ms, std::vector<Member> updates,
                               PingReqReply reply) {
  impl_->HandlePingReq(from, target_node_id, target_address, timeout_ms,
                       std::move(updates), std::move(reply));
}
std::vector<Member> Membership::HandleJoin(const Member& joiner) {
  return impl_->HandleJoin(joiner);
}
void Membership::HandleLeave(const Member& leaver) {
  impl_->HandleLeave(leaver);
}
std::vector<MemberView> Membership::Members() const { return impl_->Members(); }
size_t Membership::LiveCount() const { return impl_->LiveCount(); }
Member Membership::Self() const { return impl_->Self(); }
MembershipStats Membership::Stats() const { return impl_->Stats(); }

}  // namespace zm::cluster
