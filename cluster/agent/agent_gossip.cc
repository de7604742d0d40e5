// Push-pull anti-entropy with a few random live peers per round.
#include <algorithm>

#include "cluster/agent/agent_internal.h"
#include "node/common/hash.h"
#include "node/common/strings.h"

namespace zm::cluster::internal {
namespace {

// How long without news before the idle back-off applies.
constexpr int64_t kQuietAfterMs = 2000;

// Raises `digest` to the versions a delta was complete through: what the
// peer holds once it applied that delta.
void Advance(pb::Digest* digest, const pb::Delta& delta) {
  for (const auto& t : delta.through()) {
    bool found = false;
    for (auto& o : *digest->mutable_origins()) {
      if (o.node_id() == t.node_id()) {
        o.set_version(std::max(o.version(), t.version()));
        found = true;
        break;
      }
    }
    if (!found) *digest->add_origins() = t;
  }
}

uint64_t VersionOf(const pb::Digest& d, const std::string& node_id) {
  for (const auto& o : d.origins()) {
    if (o.node_id() == node_id) return o.version();
  }
  return 0;
}

}  // namespace

uint64_t StateHash(const pb::Digest& digest) {
  pb::Digest held;
  *held.mutable_origins() = digest.origins();
  *held.mutable_policy_sets() = digest.policy_sets();
  uint64_t h = Fnv1a64(held.SerializeAsString());
  return h == 0 ? 1 : h;
}

AntiEntropy::AntiEntropy(const AgentOptions& options, FleetState& state,
                         Membership& membership, GrpcTransport& transport,
                         Logger& log, Counters& counters)
    : options_(options),
      state_(state),
      membership_(membership),
      transport_(transport),
      log_(log),
      counters_(counters),
      rng_(std::random_device{}()) {}

void AntiEntropy::Round() {
  ++counters_.gossip_ticks;
  // Idle rounds cost little: a peer whose digest, at our last exchange,
  // equalled ours as it is now has nothing for us and lacks nothing, so it
  // is only asked again every few rounds (a change on either side shows as
  // a digest that differs, and is exchanged at the next round).
  const std::string mine = state_.GetDigest().SerializeAsString();
  const int64_t now = SteadyMs();
  const int64_t idle_ms = 5 * options_.gossip_interval_ms;
  std::vector<Member> peers;
  for (const MemberView& v : membership_.Members()) {
    if (!v.is_self && v.member.state == MemberState::kAlive) {
      peers.push_back(v.member);
    }
  }
  std::vector<Member> picked;
  {
    absl::MutexLock l(&mu_);
    // Idle back-off: no news for 2 s, a round with one random peer only
    // every gossip_idle_interval_ms (the first round counts as news); in
    // between, only with the peers whose probe answer showed a state hash
    // other than ours (each member probes one member a second, so every
    // pair is compared every N seconds or so, and a change spreads from
    // node to node at that pace even when nobody has news).
    if (news_at_ms_ < 0) news_at_ms_ = now;
    idle_ = options_.gossip_idle_interval_ms > 0 &&
            now - news_at_ms_ > kQuietAfterMs;
    bool only_due = false;
    if (idle_) {
      if (now < idle_due_ms_) {
        if (due_.empty()) return;
        only_due = true;
      } else {
        idle_due_ms_ = now + options_.gossip_idle_interval_ms;
      }
    } else {
      idle_due_ms_ = 0;
    }
    const size_t fanout = static_cast<size_t>(std::max(options_.fanout, 1));
    for (const Member& m : peers) {
      if (picked.size() < fanout && due_.contains(m.node_id) &&
          !busy_.contains(m.node_id)) {
        picked.push_back(m);
      }
    }
    due_.clear();  // the rest show up again at their next probe
    if (!only_due) {
      std::erase_if(peers, [&](const Member& m) {
        if (busy_.contains(m.node_id)) return true;
        if (std::any_of(picked.begin(), picked.end(), [&](const Member& p) {
              return p.node_id == m.node_id;
            })) {
          return true;
        }
        auto it = last_.find(m.node_id);
        return it != last_.end() && it->second.digest == mine &&
               now - it->second.at_ms < idle_ms;
      });
      std::shuffle(peers.begin(), peers.end(), rng_);
      // The idle round is a safety net (peers whose answers carry no
      // hash): one peer is enough.
      const size_t want = idle_ ? picked.size() + 1 : fanout;
      for (const Member& m : peers) {
        if (picked.size() >= want) break;
        picked.push_back(m);
      }
    }
    for (const Member& m : picked) busy_.insert(m.node_id);
  }
  if (!picked.empty()) ++counters_.gossip_rounds;
  for (const Member& m : picked) Pull(m, 0);
}

uint64_t AntiEntropy::MyHash() const { return StateHash(state_.GetDigest()); }

void AntiEntropy::NotePeerHash(const std::string& node_id, uint64_t hash) {
  if (hash == 0 || hash == MyHash()) return;
  ++counters_.hash_mismatches;
  absl::MutexLock l(&mu_);
  due_.insert(node_id);
}

bool AntiEntropy::Idle() const {
  absl::MutexLock l(&mu_);
  return idle_;
}

void AntiEntropy::NoteChanges(const Changes& c) {
  // Node statuses are for the dashboard: they spread at the idle pace and
  // do not wake the fleet up (each node publishes one a minute).
  if (c.rates.empty() && c.policy_winners.empty() && c.etrn_requests.empty() &&
      c.etrn_results.empty()) {
    return;
  }
  absl::MutexLock l(&mu_);
  news_at_ms_ = SteadyMs();
}

void AntiEntropy::Pull(const Member& peer, int chunk) {
  transport_.Exchange(
      peer, state_.GetDigest(),
      [this, peer, chunk](absl::Status s, const pb::ExchangeReply& reply) {
        if (!s.ok()) {
          if (limiter_.Allow(peer.node_id)) {
            log_.Info("", StrCat("anti-entropy with ", peer.node_id,
                                 " failed: ", Message(s)));
          }
          return Finish(peer);
        }
        if (DeltaHasContent(reply.delta()) ||
            reply.delta().through_size() > 0) {
          auto changes = state_.Apply(reply.delta());
          if (!changes.ok()) {
            log_.Error("", StrCat("cannot store a delta from ", peer.node_id,
                                  ": ", Message(changes.status())));
            return Finish(peer);
          }
          counters_.records_applied += changes->count();
          if (changes->rejected > 0 && limiter_.Allow(peer.node_id + "|bad")) {
            log_.Warning(
                "", StrCat("peer ", peer.node_id, " sent ", changes->rejected,
                           " malformed records, refused: ",
                           Message(changes->first_rejection)));
          }
        }
        if (reply.more() && chunk + 1 < options_.max_chunks_per_round) {
          return Pull(peer, chunk + 1);
        }
        if (!reply.more()) {
          NoteSync(peer, reply.digest());
          absl::MutexLock l(&mu_);
          if (last_.size() > 4096) last_.clear();
          last_[peer.node_id] = {reply.digest().SerializeAsString(),
                                 SteadyMs()};
        }
        PushTo(peer, reply.digest(), 0);
      });
}

void AntiEntropy::PushTo(const Member& peer, pb::Digest theirs, int chunk) {
  DeltaBatch batch = state_.DeltaFor(theirs, options_.exchange_max_bytes);
  if (!DeltaHasContent(batch.delta)) {
    return Finish(peer);
  }
  Advance(&theirs, batch.delta);
  bool more = batch.more && chunk + 1 < options_.max_chunks_per_round;
  transport_.Push(peer, std::move(batch.delta),
                  [this, peer, theirs = std::move(theirs), chunk,
                   more](absl::Status s) mutable {
                    if (s.ok() && more) {
                      return PushTo(peer, std::move(theirs), chunk + 1);
                    }
                    Finish(peer);
                  });
}

void AntiEntropy::Finish(const Member& peer) {
  absl::MutexLock l(&mu_);
  busy_.erase(peer.node_id);
}

void AntiEntropy::NoteSync(const Member& peer, const pb::Digest& theirs) {
  uint64_t have = VersionOf(state_.GetDigest(), peer.node_id);
  if (have < VersionOf(theirs, peer.node_id)) return;
  absl::MutexLock l(&mu_);
  in_sync_at_[peer.node_id] = UnixMs();
}

int64_t AntiEntropy::InSyncAt(const std::string& node_id) const {
  absl::MutexLock l(&mu_);
  auto it = in_sync_at_.find(node_id);
  return it == in_sync_at_.end() ? 0 : it->second;
}

size_t AntiEntropy::Busy() const {
  absl::MutexLock l(&mu_);
  return busy_.size();
}

}  // namespace zm::cluster::internal
