// The fleet state store: per-origin maps of records plus a per-origin
// version index, which DeltaFor walks oldest first.
//
// Invariant behind the digest: if this store's digest for origin O is d, it
// holds every record O ever wrote at a version <= d, or a newer version of
// the same record, or has dropped it by expiry. DeltaFor keeps it for the
// receiver: per origin it sends a prefix (by version) of what lies above
// the peer's digest and says, in Delta.through, how far that prefix goes.
//
// Persistence keys (RocksDB): "<kind><origin>\0<record key>" -> the record
// (kind r rate, p policy, e ETRN request, x ETRN result, s node status,
// whose record key is empty), "d<origin>" ->
// "<version> <floor>", "c<request id>" -> claim expiry (unix ms).
#include "cluster/state/fleet_state.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <queue>
#include <set>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "cluster/state/state_internal.h"
#include "fmt/format.h"
#include "node/common/strings.h"

namespace zm::cluster {
namespace {

using internal::Batch;

enum class Kind : char {
  kRate = 'r',
  kPolicy = 'p',
  kEtrnRequest = 'e',
  kEtrnResult = 'x',
  kStatus = 's',
};

int64_t SystemNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string RateKey(const v1::RateSlot& r) {
  return fmt::format("{}{}{}{}{}", r.key(), '\0', r.generation(), '\0',
                     r.slot_start());
}

// Records of one origin, by record key, and the version index.
struct Origin {
  uint64_t version = 0;  // the digest: complete up to here
  uint64_t floor = 0;    // highest policy version dropped past the horizon
  std::map<std::string, v1::RateSlot> rates;
  std::map<std::string, v1::PolicyEntry> policies;  // by subject
  std::map<std::string, v1::EtrnRequest> requests;  // by id
  std::map<std::string, v1::EtrnResult> results;    // by request id
  std::map<std::string, v1::NodeStatus> statuses;   // at most one, key ""
  std::map<uint64_t, std::pair<Kind, std::string>> by_version;
};

uint64_t Max(uint64_t a, uint64_t b) { return a > b ? a : b; }

v1::RateSlot MaxSlot(const v1::RateSlot& a, const v1::RateSlot& b) {
  v1::RateSlot m = a;
  m.set_messages(Max(a.messages(), b.messages()));
  m.set_recipients(Max(a.recipients(), b.recipients()));
  m.set_auth_failures(Max(a.auth_failures(), b.auth_failures()));
  m.set_aborts(Max(a.aborts(), b.aborts()));
  m.set_excesses(Max(a.excesses(), b.excesses()));
  m.set_version(Max(a.version(), b.version()));
  return m;
}

bool SameCounts(const v1::RateSlot& a, const v1::RateSlot& b) {
  return a.messages() == b.messages() && a.recipients() == b.recipients() &&
         a.auth_failures() == b.auth_failures() && a.aborts() == b.aborts() &&
         a.excesses() == b.excesses();
}

// Deterministic total order for two versions of one record (higher version
// first; a peer that reuses a version with other content cannot make two
// stores disagree).
template <typename Msg>
bool Newer(const Msg& a, const Msg& b) {
  if (a.version() != b.version()) return a.version() > b.version();
  return a.SerializeAsString() > b.SerializeAsString();
}

bool SameMsg(const google::protobuf::MessageLite& a,
             const google::protobuf::MessageLite& b) {
  return a.SerializeAsString() == b.SerializeAsString();
}

// Whether policy record a wins over b: the higher Hlc; at an equal Hlc
// (one write seen twice, or a peer's bug) the same choice everywhere.
bool Beats(const v1::PolicyEntry& a, const v1::PolicyEntry& b) {
  int c = CompareHlc(a.hlc(), b.hlc());
  if (c != 0) return c > 0;
  return Newer(a, b);
}

// A tombstone or an expired entry: after the horizon it is dropped (only
// winners are kept, so nothing it overrode is left to win again).
std::optional<int64_t> GcTime(const v1::PolicyEntry& p) {
  if (p.deleted()) return p.hlc().wall_ms();
  if (p.expires_unix_ms() != 0) return p.expires_unix_ms();
  return std::nullopt;
}

bool Live(const v1::PolicyEntry& p, int64_t now_ms) {
  return !p.deleted() &&
         (p.expires_unix_ms() == 0 || p.expires_unix_ms() > now_ms);
}

// splitmix64's finalizer: the per-version term of a policy set hash.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Hash of the versions of o's policy records at or below `through`
// (PolicySetHash; order-free, so two stores holding the same set agree).
uint64_t PolicySetHashOf(const Origin& o, uint64_t through) {
  uint64_t h = 0;
  for (const auto& [subject, p] : o.policies) {
    if (p.version() <= through) h ^= Mix(p.version());
  }
  return h;
}

// Wire size of one repeated field element (tag + length + body).
size_t Cost(const google::protobuf::MessageLite& m) {
  return m.ByteSizeLong() + 4;
}

class FleetStateImpl : public FleetState {
 public:
  FleetStateImpl(std::string node_id, uint64_t generation,
                 FleetStateOptions opt, std::unique_ptr<internal::Store> store)
      : node_id_(std::move(node_id)),
        generation_(generation),
        opt_(std::move(opt)),
        store_(std::move(store)),
        hlc_(node_id_) {}

  absl::Status Load() ABSL_LOCKS_EXCLUDED(mu_);

  const std::string& node_id() const override { return node_id_; }
  uint64_t generation() const override { return generation_; }

  absl::StatusOr<std::vector<v1::RateSlot>> PutLocalRates(
      const std::vector<v1::RateSlot>& slots) override;
  absl::StatusOr<v1::PolicyEntry> PolicyPut(const PolicySpec& spec) override;
  absl::StatusOr<v1::PolicyEntry> PolicyDelete(
      std::string_view subject) override;
  absl::StatusOr<v1::EtrnRequest> StartEtrn(std::string_view domain,
                                            int64_t ttl_ms) override;
  absl::StatusOr<v1::EtrnResult> RecordEtrnResult(
      std::string_view request_id, int code, std::string_view text) override;
  absl::StatusOr<bool> ClaimEtrn(std::string_view request_id) override;
  std::vector<v1::EtrnRequest> EtrnUnclaimed() const override;
  absl::StatusOr<v1::NodeStatus> PublishNodeStatus(
      v1::NodeStatus status) override;

  v1::Digest GetDigest() const override;
  DeltaBatch DeltaFor(const v1::Digest& peer, size_t max_bytes) const override;
  absl::StatusOr<Changes> Apply(const v1::Delta& delta) override;
  void SetListener(std::function<void(const Changes&)> listener) override {
    absl::MutexLock l(&mu_);
    listener_ = std::move(listener);
  }

  std::vector<v1::PolicyEntry> PolicyLive(int64_t now_ms) const override;
  std::optional<v1::PolicyEntry> PolicyLookup(std::string_view subject,
                                              int64_t now_ms) const override;
  std::vector<v1::RateSlot> RatesInWindow(int64_t window_start_sec,
                                          std::string_view key) const override;
  std::vector<RateTotal> TopRates(int64_t window_start_sec, size_t n,
                                  std::string_view field,
                                  const RateFilter& want) const override;
  std::vector<v1::EtrnRequest> EtrnRequests(int64_t now_ms) const override;
  std::vector<v1::EtrnResult> EtrnResults(
      std::string_view request_id) const override;
  std::vector<v1::NodeStatus> NodeStatuses() const override;
  std::vector<v1::PolicyEntry> PolicyAll() const override;
  absl::StatusOr<ExpireStats> Expire() override;
  FleetStateStats Stats() const override;

 private:
  int64_t NowMs() const { return opt_.clock ? opt_.clock() : SystemNowMs(); }

  static std::string RowKey(Kind kind, std::string_view origin,
                            std::string_view key) {
    return fmt::format("{}{}{}{}", static_cast<char>(kind), origin, '\0', key);
  }
  void PutDigestRow(const std::string& origin, const Origin& o, Batch* b) {
    if (!store_) return;
    b->emplace_back(StrCat("d", origin),
                    fmt::format("{} {}", o.version, o.floor));
  }

  // Stores `rec` as origin's record `key` of `kind`, replacing any older one.
  template <typename Msg>
  void PutRecord(const std::string& origin, Origin& o, Kind kind,
                 std::map<std::string, Msg>& map, const std::string& key,
                 const Msg& rec, Batch* b) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto [it, fresh] = map.try_emplace(key, rec);
    if (!fresh) {
      o.by_version.erase(it->second.version());
      if constexpr (std::is_same_v<Msg, v1::RateSlot>) {
        CountRate(it->second, -1);
      }
      it->second = rec;
    }
    o.by_version[rec.version()] = {kind, key};
    if constexpr (std::is_same_v<Msg, v1::RateSlot>) CountRate(rec, +1);
    if (kind == Kind::kPolicy) subject_origins_[key].insert(origin);
    if (store_)
      b->emplace_back(RowKey(kind, origin, key), rec.SerializeAsString());
  }

  template <typename Msg>
  void EraseRecord(const std::string& origin, Origin& o, Kind kind,
                   std::map<std::string, Msg>& map,
                   typename std::map<std::string, Msg>::iterator it, Batch* b)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    o.by_version.erase(it->second.version());
    if constexpr (std::is_same_v<Msg, v1::RateSlot>) CountRate(it->second, -1);
    if (store_) b->emplace_back(RowKey(kind, origin, it->first), std::nullopt);
    if (kind == Kind::kPolicy) {
      auto s = subject_origins_.find(it->first);
      if (s != subject_origins_.end()) {
        s->second.erase(origin);
        if (s->second.empty()) subject_origins_.erase(s);
      }
    }
    map.erase(it);
  }

  // Keeps rate_totals_ in step with the stored rate slots: sign +1 when
  // `r` is stored, -1 when it is replaced or erased.
  void CountRate(const v1::RateSlot& r, int sign)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto add = [sign](uint64_t& total, uint64_t v) {
      total = sign > 0 ? total + v : total - v;
    };
    if (sign > 0) {
      std::vector<SlotTotal>& slots = rate_totals_[r.key()];
      auto it = std::find_if(slots.begin(), slots.end(), [&](const auto& t) {
        return t.slot_start == r.slot_start();
      });
      if (it == slots.end()) {
        SlotTotal fresh;
        fresh.slot_start = r.slot_start();
        it = slots.insert(slots.end(), fresh);
      }
      ++it->records;
      add(it->counts.messages, r.messages());
      add(it->counts.recipients, r.recipients());
      add(it->counts.auth_failures, r.auth_failures());
      add(it->counts.aborts, r.aborts());
      add(it->counts.excesses, r.excesses());
      return;
    }
    auto k = rate_totals_.find(r.key());
    if (k == rate_totals_.end()) return;
    std::vector<SlotTotal>& slots = k->second;
    auto it = std::find_if(slots.begin(), slots.end(), [&](const auto& t) {
      return t.slot_start == r.slot_start();
    });
    if (it == slots.end()) return;
    add(it->counts.messages, r.messages());
    add(it->counts.recipients, r.recipients());
    add(it->counts.auth_failures, r.auth_failures());
    add(it->counts.aborts, r.aborts());
    add(it->counts.excesses, r.excesses());
    if (--it->records == 0) slots.erase(it);
    if (slots.empty()) rate_totals_.erase(k);
  }

  const v1::PolicyEntry* Winner(std::string_view subject) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Records in `changes` the winner of `subject` if it differs from `before`.
  void NoteWinner(const std::string& subject,
                  const std::optional<v1::PolicyEntry>& before,
                  Changes* changes) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  std::optional<v1::PolicyEntry> WinnerCopy(const std::string& subject) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    const v1::PolicyEntry* w = Winner(subject);
    if (w == nullptr) return std::nullopt;
    return *w;
  }

  uint64_t NextVersion() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return ++origins_[node_id_].version;
  }
  absl::Status Persist(const Batch& b, bool sync) {
    if (!store_) return absl::OkStatus();
    return store_->Write(b, sync);
  }
  void Notify(const Changes& c) ABSL_LOCKS_EXCLUDED(mu_) {
    if (c.empty()) return;
    std::function<void(const Changes&)> listener;
    {
      absl::MutexLock l(&mu_);
      listener = listener_;
    }
    if (listener) listener(c);
  }
  absl::StatusOr<v1::PolicyEntry> PolicyWrite(v1::PolicyEntry entry)
      ABSL_LOCKS_EXCLUDED(mu_);

  // The policy live sets a peer with digest `peer` needs (PolicyLiveSet).
  void AddPolicyLive(
      const v1::Digest& peer,
      const std::map<std::string, uint64_t, std::less<>>& peer_versions,
      v1::Delta* out) const ABSL_SHARED_LOCKS_REQUIRED(mu_);

  // Erases every record of a subject (the losers of a newer write).
  void DropSubject(const std::string& subject, Batch* b)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops a policy record past the horizon and raises its origin's floor.
  void DropPolicy(const std::string& origin, const std::string& subject,
                  Batch* b, size_t* dropped) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string node_id_;
  const uint64_t generation_;
  const FleetStateOptions opt_;
  const std::unique_ptr<internal::Store> store_;

  mutable absl::Mutex mu_;
  Hlc hlc_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Origin> origins_ ABSL_GUARDED_BY(mu_);
  // Running totals of the stored rate slots, per key and slot start (all
  // origins and generations), kept by PutRecord/EraseRecord: TopRates
  // reads these instead of every slot.
  struct SlotTotal {
    int64_t slot_start = 0;
    uint32_t records = 0;  // stored slots counted here
    RateCounts counts;
  };
  std::unordered_map<std::string, std::vector<SlotTotal>> rate_totals_
      ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::set<std::string>, std::less<>> subject_origins_
      ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t, std::less<>> claims_ ABSL_GUARDED_BY(mu_);
  // Our own full resync in progress (not persisted: a restart begins it
  // anew): per origin, how far the policy records are taken in full.
  std::map<std::string, uint64_t> resync_progress_ ABSL_GUARDED_BY(mu_);
  std::function<void(const Changes&)> listener_ ABSL_GUARDED_BY(mu_);
  FleetStateStats stats_ ABSL_GUARDED_BY(mu_);
  mutable std::atomic<uint64_t> resyncs_served_{0};
};

absl::Status FleetStateImpl::Load() {
  absl::MutexLock l(&mu_);
  absl::Status bad = absl::OkStatus();
  absl::Status loaded = store_->Load([&](std::string_view key,
                                         std::string_view value) {
    if (key.empty()) return;
    char kind = key[0];
    std::string_view rest = key.substr(1);
    if (kind == 'd') {
      std::vector<std::string_view> f = SplitWhitespace(value);
      std::optional<uint64_t> v =
          f.size() == 2 ? ParseUint(f[0]) : std::nullopt;
      std::optional<uint64_t> fl =
          f.size() == 2 ? ParseUint(f[1]) : std::nullopt;
      if (!v || !fl) {
        bad = absl::DataLossError(StrCat("bad digest row for ", rest));
        return;
      }
      Origin& o = origins_[std::string(rest)];
      o.version = Max(o.version, *v);
      o.floor = Max(o.floor, *fl);
      return;
    }
    if (kind == 'c') {
      std::optional<int64_t> exp = ParseInt(value);
      if (exp) claims_[std::string(rest)] = *exp;
      return;
    }
    size_t nul = rest.find('\0');
    if (nul == std::string_view::npos) return;
    std::string origin(rest.substr(0, nul));
    std::string rkey(rest.substr(nul + 1));
    Origin& o = origins_[origin];
    Batch none;
    auto parse = [&](google::protobuf::MessageLite* m) {
      if (m->ParseFromArray(value.data(), static_cast<int>(value.size()))) {
        return true;
      }
      bad = absl::DataLossError(StrCat("unparsable record of ", origin));
      return false;
    };
    switch (kind) {
      case 'r': {
        v1::RateSlot r;
        if (parse(&r))
          PutRecord(origin, o, Kind::kRate, o.rates, rkey, r, &none);
        break;
      }
      case 'p': {
        v1::PolicyEntry p;
        if (parse(&p)) {
          PutRecord(origin, o, Kind::kPolicy, o.policies, rkey, p, &none);
          hlc_.Update(p.hlc());
        }
        break;
      }
      case 'e': {
        v1::EtrnRequest r;
        if (parse(&r)) {
          PutRecord(origin, o, Kind::kEtrnRequest, o.requests, rkey, r, &none);
        }
        break;
      }
      case 'x': {
        v1::EtrnResult r;
        if (parse(&r)) {
          PutRecord(origin, o, Kind::kEtrnResult, o.results, rkey, r, &none);
        }
        break;
      }
      case 's': {
        v1::NodeStatus st;
        if (parse(&st)) {
          PutRecord(origin, o, Kind::kStatus, o.statuses, rkey, st, &none);
          hlc_.Update(st.hlc());
        }
        break;
      }
      default:
        break;
    }
  });
  if (!loaded.ok()) return loaded;
  // A record's version never exceeds its origin's digest (a crash between
  // the two cannot happen: they share a batch), but be safe for our own
  // counter, which must never go back.
  for (auto& [origin, o] : origins_) {
    if (!o.by_version.empty()) {
      o.version = Max(o.version, o.by_version.rbegin()->first);
    }
  }
  return bad;
}

const v1::PolicyEntry* FleetStateImpl::Winner(std::string_view subject) const {
  auto s = subject_origins_.find(subject);
  if (s == subject_origins_.end()) return nullptr;
  const v1::PolicyEntry* best = nullptr;
  for (const std::string& origin : s->second) {
    auto o = origins_.find(origin);
    if (o == origins_.end()) continue;
    auto p = o->second.policies.find(std::string(subject));
    if (p == o->second.policies.end()) continue;
    if (best == nullptr || CompareHlc(p->second.hlc(), best->hlc()) > 0) {
      best = &p->second;
    }
  }
  return best;
}

void FleetStateImpl::NoteWinner(const std::string& subject,
                                const std::optional<v1::PolicyEntry>& before,
                                Changes* changes) const {
  const v1::PolicyEntry* now = Winner(subject);
  if (now == nullptr) {
    if (!before) return;
    v1::PolicyEntry gone;
    gone.set_subject(subject);
    gone.set_deleted(true);
    changes->policy_winners.push_back(std::move(gone));
    return;
  }
  if (before && SameMsg(*before, *now)) return;
  changes->policy_winners.push_back(*now);
}

// ---- Local writes.

absl::StatusOr<std::vector<v1::RateSlot>> FleetStateImpl::PutLocalRates(
    const std::vector<v1::RateSlot>& slots) {
  Changes changes;
  {
    absl::MutexLock l(&mu_);
    int64_t now = NowMs();
    Batch batch;
    Origin& o = origins_[node_id_];
    std::vector<v1::RateSlot> checked;
    checked.reserve(slots.size());
    for (const v1::RateSlot& in : slots) {
      v1::RateSlot r = in;
      if (r.node_id().empty()) r.set_node_id(node_id_);
      if (r.generation() == 0) r.set_generation(generation_);
      r.set_version(1);  // validated below, set for real on change
      if (r.node_id() != node_id_) {
        return absl::InvalidArgumentError(
            StrCat("rate slot of node ", r.node_id(), " written locally"));
      }
      if (absl::Status ok = internal::ValidateRateSlot(r, opt_, now);
          !ok.ok()) {
        return ok;
      }
      checked.push_back(std::move(r));
    }
    absl::Status full = absl::OkStatus();
    for (v1::RateSlot& r : checked) {
      std::string key = RateKey(r);
      auto it = o.rates.find(key);
      if (it == o.rates.end()) {
        if (o.rates.size() >= opt_.max_rate_slots_per_origin) {
          full = absl::ResourceExhaustedError(fmt::format(
              "more than {} rate slots", opt_.max_rate_slots_per_origin));
          break;
        }
      } else {
        v1::RateSlot merged = MaxSlot(it->second, r);
        if (SameCounts(merged, it->second)) continue;
        r = merged;
      }
      r.set_version(NextVersion());
      PutRecord(node_id_, o, Kind::kRate, o.rates, key, r, &batch);
      changes.rates.push_back(r);
    }
    if (!changes.rates.empty()) {
      PutDigestRow(node_id_, o, &batch);
      if (absl::Status w = Persist(batch, opt_.sync_local_writes); !w.ok()) {
        return w;
      }
    }
    if (!full.ok()) return full;  // what fitted is stored
  }
  Notify(changes);
  return changes.rates;
}

absl::StatusOr<v1::PolicyEntry> FleetStateImpl::PolicyWrite(
    v1::PolicyEntry entry) {
  Changes changes;
  {
    absl::MutexLock l(&mu_);
    int64_t now = NowMs();
    Origin& o = origins_[node_id_];
    const std::string& subject = entry.subject();
    if (!o.policies.contains(subject) &&
        o.policies.size() >= opt_.max_policies_per_origin) {
      return absl::ResourceExhaustedError(fmt::format(
          "more than {} policy entries", opt_.max_policies_per_origin));
    }
    std::optional<v1::PolicyEntry> before = WinnerCopy(subject);
    if (before) hlc_.Update(before->hlc());
    *entry.mutable_hlc() = hlc_.Now(now);
    entry.set_author_node(node_id_);
    entry.set_created_unix_ms(now);
    entry.set_version(NextVersion());
    Batch batch;
    DropSubject(subject, &batch);
    PutRecord(node_id_, o, Kind::kPolicy, o.policies, subject, entry, &batch);
    PutDigestRow(node_id_, o, &batch);
    NoteWinner(subject, before, &changes);
    if (absl::Status w = Persist(batch, opt_.sync_local_writes); !w.ok()) {
      return w;
    }
  }
  Notify(changes);
  return entry;
}

absl::StatusOr<v1::PolicyEntry> FleetStateImpl::PolicyPut(
    const PolicySpec& spec) {
  absl::StatusOr<std::string> subject = NormalizePolicySubject(spec.subject);
  if (!subject.ok()) return subject.status();
  if (!v1::PolicyAction_IsValid(spec.action) ||
      spec.action == v1::POLICY_ACTION_UNSPECIFIED) {
    return absl::InvalidArgumentError("policy: no action");
  }
  if ((spec.action == v1::POLICY_ACTION_RATE_CLASS) !=
      !spec.rate_class.empty()) {
    return absl::InvalidArgumentError(
        "policy: a rate class goes with the rate-class action only");
  }
  if (!internal::ValidText(spec.reason, opt_.max_field_bytes) ||
      !internal::ValidText(spec.rate_class, 64) || spec.ttl_ms < 0) {
    return absl::InvalidArgumentError(
        "policy: reason or rate class too long or binary, or negative TTL");
  }
  v1::PolicyEntry e;
  e.set_subject(*subject);
  e.set_action(spec.action);
  e.set_rate_class(spec.rate_class);
  e.set_reason(spec.reason);
  int64_t now = NowMs();
  if (spec.ttl_ms > 0) e.set_expires_unix_ms(now + spec.ttl_ms);
  return PolicyWrite(std::move(e));
}

absl::StatusOr<v1::PolicyEntry> FleetStateImpl::PolicyDelete(
    std::string_view subject_in) {
  absl::StatusOr<std::string> subject = NormalizePolicySubject(subject_in);
  if (!subject.ok()) return subject.status();
  v1::PolicyEntry e;
  e.set_subject(*subject);
  e.set_deleted(true);
  return PolicyWrite(std::move(e));
}

absl::StatusOr<v1::EtrnRequest> FleetStateImpl::StartEtrn(
    std::string_view domain, int64_t ttl_ms) {
  if (!internal::ValidToken(domain)) {
    return absl::InvalidArgumentError("etrn: empty or malformed domain");
  }
  if (ttl_ms <= 0 || ttl_ms > opt_.max_etrn_ttl_ms) {
    return absl::InvalidArgumentError(fmt::format(
        "etrn: ttl {} ms outside (0, {}]", ttl_ms, opt_.max_etrn_ttl_ms));
  }
  Changes changes;
  v1::EtrnRequest r;
  {
    absl::MutexLock l(&mu_);
    Origin& o = origins_[node_id_];
    if (o.requests.size() + o.results.size() >= opt_.max_etrn_per_origin) {
      return absl::ResourceExhaustedError("etrn: too many requests");
    }
    int64_t now = NowMs();
    uint64_t version = NextVersion();
    r.set_id(fmt::format("{}-{}-{}", node_id_, now, version));
    r.set_domain(std::string(domain));
    r.set_origin_node(node_id_);
    r.set_created_unix_ms(now);
    r.set_expires_unix_ms(now + ttl_ms);
    r.set_version(version);
    Batch batch;
    PutRecord(node_id_, o, Kind::kEtrnRequest, o.requests, r.id(), r, &batch);
    PutDigestRow(node_id_, o, &batch);
    if (absl::Status w = Persist(batch, opt_.sync_local_writes); !w.ok()) {
      return w;
    }
    changes.etrn_requests.push_back(r);
  }
  Notify(changes);
  return r;
}

absl::StatusOr<v1::EtrnResult> FleetStateImpl::RecordEtrnResult(
    std::string_view request_id, int code, std::string_view text) {
  if (!internal::ValidToken(request_id) || code < 0 || code > 999 ||
      !internal::ValidText(text, opt_.max_field_bytes)) {
    return absl::InvalidArgumentError("etrn result: bad id, code or text");
  }
  Changes changes;
  v1::EtrnResult r;
  {
    absl::MutexLock l(&mu_);
    Origin& o = origins_[node_id_];
    std::string id(request_id);
    if (!o.results.contains(id) &&
        o.requests.size() + o.results.size() >= opt_.max_etrn_per_origin) {
      return absl::ResourceExhaustedError("etrn: too many results");
    }
    int64_t now = NowMs();
    r.set_request_id(id);
    r.set_node_id(node_id_);
    r.set_done_unix_ms(now);
    r.set_code(code);
    r.set_text(std::string(text));
    r.set_version(NextVersion());
    Batch batch;
    PutRecord(node_id_, o, Kind::kEtrnResult, o.results, id, r, &batch);
    PutDigestRow(node_id_, o, &batch);
    if (!claims_.contains(id)) {
      claims_[id] = now + opt_.max_etrn_ttl_ms;
      if (store_) batch.emplace_back(StrCat("c", id), StrCat(claims_[id]));
    }
    if (absl::Status w = Persist(batch, opt_.sync_local_writes); !w.ok()) {
      return w;
    }
    changes.etrn_results.push_back(r);
  }
  Notify(changes);
  return r;
}

absl::StatusOr<bool> FleetStateImpl::ClaimEtrn(std::string_view request_id) {
  if (!internal::ValidToken(request_id)) {
    return absl::InvalidArgumentError("etrn claim: bad request id");
  }
  absl::MutexLock l(&mu_);
  if (claims_.contains(request_id)) return false;
  int64_t expires = NowMs() + opt_.max_etrn_ttl_ms;
  for (const auto& [origin, o] : origins_) {
    auto it = o.requests.find(std::string(request_id));
    if (it != o.requests.end()) expires = it->second.expires_unix_ms();
  }
  std::string id(request_id);
  claims_[id] = expires;
  Batch batch;
  if (store_) batch.emplace_back(StrCat("c", id), StrCat(expires));
  if (absl::Status w = Persist(batch, true); !w.ok()) {
    claims_.erase(id);
    return w;
  }
  return true;
}

std::vector<v1::EtrnRequest> FleetStateImpl::EtrnUnclaimed() const {
  absl::ReaderMutexLock l(&mu_);
  int64_t now = NowMs();
  std::vector<v1::EtrnRequest> out;
  for (const auto& [origin, o] : origins_) {
    for (const auto& [id, r] : o.requests) {
      if (r.expires_unix_ms() > now && !claims_.contains(id)) out.push_back(r);
    }
  }
  return out;
}

absl::StatusOr<v1::NodeStatus> FleetStateImpl::PublishNodeStatus(
    v1::NodeStatus status) {
  Changes changes;
  {
    absl::MutexLock l(&mu_);
    int64_t now = NowMs();
    status.set_node_id(node_id_);
    if (absl::Status ok =
            internal::ValidateNodeStatus(status, opt_, now, /*local=*/true);
        !ok.ok()) {
      return ok;
    }
    Origin& o = origins_[node_id_];
    auto old = o.statuses.find("");
    if (old != o.statuses.end()) hlc_.Update(old->second.hlc());
    *status.mutable_hlc() = hlc_.Now(now);
    status.set_version(NextVersion());
    Batch batch;
    PutRecord(node_id_, o, Kind::kStatus, o.statuses, std::string(), status,
              &batch);
    PutDigestRow(node_id_, o, &batch);
    // A status is republished every few seconds: losing the last one to a
    // power cut costs nothing (the counter is synced by other writes and
    // re-taken from peers, see own() in Apply).
    if (absl::Status w = Persist(batch, /*sync=*/false); !w.ok()) return w;
    changes.node_statuses.push_back(status);
  }
  Notify(changes);
  return status;
}

// ---- Anti-entropy.

v1::Digest FleetStateImpl::GetDigest() const {
  absl::ReaderMutexLock l(&mu_);
  v1::Digest d;
  for (const auto& [origin, o] : origins_) {
    if (o.version == 0) continue;
    v1::OriginVersion* ov = d.add_origins();
    ov->set_node_id(origin);
    ov->set_version(o.version);
  }
  for (const auto& [origin, version] : resync_progress_) {
    v1::OriginVersion* ov = d.add_resync_progress();
    ov->set_node_id(origin);
    ov->set_version(version);
  }
  for (const auto& [origin, o] : origins_) {
    if (o.floor == 0) continue;
    v1::OriginVersion* ov = d.add_floors();
    ov->set_node_id(origin);
    ov->set_version(o.floor);
  }
  for (const auto& [origin, o] : origins_) {
    uint64_t h = PolicySetHashOf(o, o.version);
    if (h == 0) continue;
    v1::PolicySetHash* ps = d.add_policy_sets();
    ps->set_node_id(origin);
    ps->set_hash(h);
  }
  return d;
}

namespace {

template <typename Map>
const google::protobuf::MessageLite* Find(const Map& m,
                                          const std::string& key) {
  auto it = m.find(key);
  return it == m.end() ? nullptr : &it->second;
}

// The record of `kind` at `key` in `o` (the version index points at it).
const google::protobuf::MessageLite* RecordAt(const Origin& o, Kind kind,
                                              const std::string& key) {
  switch (kind) {
    case Kind::kRate:
      return Find(o.rates, key);
    case Kind::kPolicy:
      return Find(o.policies, key);
    case Kind::kEtrnRequest:
      return Find(o.requests, key);
    case Kind::kEtrnResult:
      return Find(o.results, key);
    case Kind::kStatus:
      return Find(o.statuses, key);
  }
  return nullptr;
}

void AddTo(v1::Delta* d, const Origin& o, Kind kind, const std::string& key) {
  switch (kind) {
    case Kind::kRate:
      *d->add_rates() = o.rates.at(key);
      break;
    case Kind::kPolicy:
      *d->add_policies() = o.policies.at(key);
      break;
    case Kind::kEtrnRequest:
      *d->add_etrn_requests() = o.requests.at(key);
      break;
    case Kind::kEtrnResult:
      *d->add_etrn_results() = o.results.at(key);
      break;
    case Kind::kStatus:
      *d->add_node_statuses() = o.statuses.at(key);
      break;
  }
}

void AddThrough(v1::Delta* d, const std::string& origin, uint64_t version) {
  v1::OriginVersion* t = d->add_through();
  t->set_node_id(origin);
  t->set_version(version);
}

}  // namespace

void FleetStateImpl::AddPolicyLive(
    const v1::Digest& peer,
    const std::map<std::string, uint64_t, std::less<>>& peer_versions,
    v1::Delta* out) const {
  std::map<std::string, uint64_t, std::less<>> peer_hash;
  for (const v1::PolicySetHash& ps : peer.policy_sets()) {
    peer_hash[ps.node_id()] = ps.hash();
  }
  // Where we cover at least the versions the peer does, our hash at its
  // version must equal its own; if not, one of us holds a record the other
  // knows dead. Our list settles it for the peer (and its list for us, on
  // the way back).
  for (const auto& [origin, pv] : peer_versions) {
    if (pv == 0) continue;
    auto o = origins_.find(origin);
    if (o == origins_.end() || o->second.version < pv) continue;
    auto ph = peer_hash.find(origin);
    uint64_t theirs = ph == peer_hash.end() ? 0 : ph->second;
    if (PolicySetHashOf(o->second, pv) == theirs) continue;
    v1::PolicyLiveSet* ls = out->add_policy_live();
    ls->set_node_id(origin);
    ls->set_through(pv);
    for (const auto& [subject, p] : o->second.policies) {
      if (p.version() <= pv) ls->add_versions(p.version());
    }
  }
}

DeltaBatch FleetStateImpl::DeltaFor(const v1::Digest& peer,
                                    size_t max_bytes) const {
  std::map<std::string, uint64_t, std::less<>> have;
  for (const v1::OriginVersion& ov : peer.origins()) {
    uint64_t& v = have[ov.node_id()];
    v = Max(v, ov.version());
  }
  auto peer_version = [&](const std::string& origin) -> uint64_t {
    auto it = have.find(origin);
    return it == have.end() ? 0 : it->second;
  };

  absl::ReaderMutexLock l(&mu_);
  DeltaBatch out;
  AddPolicyLive(peer, have, &out.delta);
  size_t used = 0;
  bool any = false;
  // Takes a record if it fits (or is the first); false once the cap is hit.
  auto take = [&](const Origin& o, Kind kind, const std::string& key) {
    const google::protobuf::MessageLite* rec = RecordAt(o, kind, key);
    if (rec == nullptr) return true;  // cannot happen: the index is exact
    size_t cost = Cost(*rec);
    if (any && used + cost > max_bytes) return false;
    AddTo(&out.delta, o, kind, key);
    used += cost;
    any = true;
    return true;
  };

  std::map<std::string, uint64_t, std::less<>> progress;
  for (const v1::OriginVersion& ov : peer.resync_progress()) {
    uint64_t& v = progress[ov.node_id()];
    v = Max(v, ov.version());
  }
  auto progress_of = [&](const std::string& origin) -> uint64_t {
    auto it = progress.find(origin);
    return it == progress.end() ? 0 : it->second;
  };

  std::map<std::string, uint64_t, std::less<>> peer_floor;
  for (const v1::OriginVersion& ov : peer.floors()) {
    uint64_t& v = peer_floor[ov.node_id()];
    v = Max(v, ov.version());
  }
  // A resync starts when the peer is behind one of our floors. One in
  // progress goes on from where it is if we know no drop the peer does not
  // (else from the start, against our newer truth); a sender that knows
  // less than the peer does not serve it.
  std::vector<std::string> triggered;
  bool wiser = false;  // we know a drop the peer does not
  for (const auto& [origin, o] : origins_) {
    if (peer_version(origin) < o.floor) triggered.push_back(origin);
    auto pf = peer_floor.find(origin);
    if (o.floor > (pf == peer_floor.end() ? 0 : pf->second)) wiser = true;
  }
  bool behind = false;  // the peer knows a drop we do not
  for (const auto& [origin, f] : peer_floor) {
    auto o = origins_.find(origin);
    if (o == origins_.end() || o->second.floor < f) behind = true;
  }
  if (wiser) progress.clear();
  bool resync = !triggered.empty() || (!progress.empty() && !behind);

  if (!resync) {
    // Oldest version first across origins, so one busy origin cannot
    // starve the others.
    using Cursor = std::pair<uint64_t, const std::string*>;
    std::priority_queue<Cursor, std::vector<Cursor>, std::greater<>> next;
    for (const auto& [origin, o] : origins_) {
      uint64_t pv = peer_version(origin);
      if (o.version <= pv) continue;
      auto it = o.by_version.upper_bound(pv);
      if (it == o.by_version.end()) {
        AddThrough(&out.delta, origin, o.version);  // nothing left to send
      } else {
        next.emplace(it->first, &origin);
      }
    }
    std::map<std::string, uint64_t> last;
    while (!next.empty()) {
      auto [version, origin] = next.top();
      const Origin& o = origins_.at(*origin);
      auto it = o.by_version.find(version);
      if (!take(o, it->second.first, it->second.second)) {
        out.more = true;
        break;
      }
      next.pop();
      last[*origin] = version;
      if (++it == o.by_version.end()) {
        AddThrough(&out.delta, *origin, o.version);
        last.erase(*origin);
      } else {
        next.emplace(it->first, origin);
      }
    }
    // Origins cut short: complete up to their last record sent.
    for (const auto& [origin, version] : last) {
      AddThrough(&out.delta, origin, version);
    }
    return out;
  }

  // Resync: every origin's policy records in full, so the peer can drop
  // what we dropped past the horizon (and the records those overrode, of
  // any origin), plus the other records above its digest. Each origin's
  // policy records go on from the peer's resync progress, so a resync cut
  // by the cap resumes where it stopped. The origins that triggered it go
  // last.
  resyncs_served_.fetch_add(1, std::memory_order_relaxed);
  std::vector<const std::string*> order;
  std::set<std::string_view> trig(triggered.begin(), triggered.end());
  for (const auto& [origin, o] : origins_) {
    if (!trig.contains(origin)) order.push_back(&origin);
  }
  for (const std::string& origin : triggered) {
    order.push_back(&origins_.find(origin)->first);
  }
  for (const auto& [origin, o] : origins_) {
    if (o.floor == 0) continue;
    v1::OriginVersion* f = out.delta.add_floors();
    f->set_node_id(origin);
    f->set_version(o.floor);
  }
  for (const std::string* origin : order) {
    const Origin& o = origins_.at(*origin);
    uint64_t pv = peer_version(*origin);
    // Progress never passes the digest it was reported with.
    uint64_t start = std::min(progress_of(*origin), pv);
    if (o.version <= start && o.version <= pv) continue;  // nothing owed
    uint64_t through = 0;
    bool cut = false;
    for (auto it = o.by_version.upper_bound(std::min(start, pv));
         it != o.by_version.end(); ++it) {
      const auto& [version, ref] = *it;
      if (ref.first == Kind::kPolicy ? version <= start : version <= pv) {
        continue;
      }
      if (!take(o, ref.first, ref.second)) {
        cut = true;
        break;
      }
      through = version;
    }
    if (!cut) through = o.version;
    if (through > start) {
      AddThrough(&out.delta, *origin, through);
      out.delta.add_resync_origins(*origin);
      if (start > 0) {
        v1::OriginVersion* from = out.delta.add_resync_from();
        from->set_node_id(*origin);
        from->set_version(start);
      }
      out.full_resync_origins.push_back(*origin);
    } else if (through > 0) {
      AddThrough(&out.delta, *origin, through);
    }
    if (cut) {
      out.more = true;
      break;
    }
  }
  if (!out.more) out.delta.set_resync_complete(true);
  return out;
}

absl::StatusOr<Changes> FleetStateImpl::Apply(const v1::Delta& delta) {
  Changes changes;
  {
    absl::MutexLock l(&mu_);
    int64_t now = NowMs();
    int64_t now_sec = now / 1000;
    int64_t window_sec =
        static_cast<int64_t>(opt_.rate_slot_seconds) * opt_.rate_window_slots;
    Batch batch;
    std::set<std::string> touched;  // origins whose digest row changes
    auto reject = [&](absl::Status why) {
      if (changes.rejected++ == 0) changes.first_rejection = std::move(why);
      ++stats_.rejected;
    };
    // A version already indexed for another record of the origin: refused,
    // or the index would lose one of them.
    auto reused = [&](const std::string& origin, uint64_t version, Kind kind,
                      const std::string& key) {
      auto o = origins_.find(origin);
      if (o == origins_.end()) return false;
      auto v = o->second.by_version.find(version);
      if (v == o->second.by_version.end() ||
          (v->second.first == kind && v->second.second == key)) {
        return false;
      }
      reject(absl::InvalidArgumentError(
          fmt::format("version {} of {} reused", version, origin)));
      return true;
    };
    auto over = [&](std::string_view what) {
      reject(absl::ResourceExhaustedError(
          StrCat("too many ", what, " records from one origin")));
    };
    // A record of our own above our counter: our store was lost and peers
    // remember more; the counter must move past it.
    auto own = [&](const std::string& origin, uint64_t version) {
      if (origin != node_id_) return;
      Origin& o = origins_[origin];
      if (version > o.version) {
        o.version = version;
        touched.insert(origin);
      }
    };

    std::set<std::string_view> resyncing(delta.resync_origins().begin(),
                                         delta.resync_origins().end());
    for (const v1::RateSlot& r : delta.rates()) {
      if (absl::Status ok = internal::ValidateRateSlot(r, opt_, now);
          !ok.ok()) {
        reject(std::move(ok));
        continue;
      }
      if (r.slot_start() + window_sec <= now_sec) continue;  // expired
      std::string key = RateKey(r);
      if (reused(r.node_id(), r.version(), Kind::kRate, key)) continue;
      Origin& o = origins_[r.node_id()];
      own(r.node_id(), r.version());
      auto it = o.rates.find(key);
      v1::RateSlot merged = r;
      if (it != o.rates.end()) {
        merged = MaxSlot(it->second, r);
        if (SameMsg(merged, it->second)) continue;
      } else if (o.rates.size() >= opt_.max_rate_slots_per_origin) {
        over("rate");
        continue;
      }
      PutRecord(r.node_id(), o, Kind::kRate, o.rates, key, merged, &batch);
      changes.rates.push_back(merged);
      ++stats_.applied;
    }

    for (const v1::PolicyEntry& p : delta.policies()) {
      if (absl::Status ok = internal::ValidatePolicy(p, opt_, now); !ok.ok()) {
        reject(std::move(ok));
        continue;
      }
      const std::string& origin = p.author_node();
      if (reused(origin, p.version(), Kind::kPolicy, p.subject())) continue;
      own(origin, p.version());
      Origin& o = origins_[origin];
      if (resyncing.contains(origin)) {
        // At or below our digest we hold the record or what beat it: the
        // resync's copy only marks it as kept (see the prune below).
        if (p.version() <= o.version) continue;
      } else if (p.version() <= o.floor) {
        continue;  // dropped here already
      }
      // Only the winner of a subject is kept: a record that loses is
      // dominated for good (and dropped by every store that sees both).
      const v1::PolicyEntry* w = Winner(p.subject());
      if (w != nullptr && !Beats(p, *w)) continue;
      std::optional<int64_t> gc = GcTime(p);
      bool past = gc && *gc + opt_.tombstone_horizon_ms <= now;
      if (!past && !o.policies.contains(p.subject()) &&
          o.policies.size() >= opt_.max_policies_per_origin) {
        over("policy");
        continue;
      }
      std::optional<v1::PolicyEntry> before = WinnerCopy(p.subject());
      DropSubject(p.subject(), &batch);
      if (past) {
        // Dropped past the horizon elsewhere: take its effect (what it
        // overrode is gone), not the record.
        o.floor = Max(o.floor, p.version());
        touched.insert(origin);
      } else {
        PutRecord(origin, o, Kind::kPolicy, o.policies, p.subject(), p, &batch);
      }
      hlc_.Update(p.hlc());
      NoteWinner(p.subject(), before, &changes);
      ++stats_.applied;
    }

    for (const v1::EtrnRequest& r : delta.etrn_requests()) {
      if (absl::Status ok = internal::ValidateEtrnRequest(r, opt_, now);
          !ok.ok()) {
        reject(std::move(ok));
        continue;
      }
      if (r.expires_unix_ms() <= now) continue;
      if (reused(r.origin_node(), r.version(), Kind::kEtrnRequest, r.id())) {
        continue;
      }
      own(r.origin_node(), r.version());
      Origin& o = origins_[r.origin_node()];
      auto it = o.requests.find(r.id());
      if (it != o.requests.end() && !Newer(r, it->second)) continue;
      if (it == o.requests.end() &&
          o.requests.size() + o.results.size() >= opt_.max_etrn_per_origin) {
        over("etrn");
        continue;
      }
      bool fresh = it == o.requests.end();
      PutRecord(r.origin_node(), o, Kind::kEtrnRequest, o.requests, r.id(), r,
                &batch);
      if (fresh) changes.etrn_requests.push_back(r);
      ++stats_.applied;
    }

    for (const v1::EtrnResult& r : delta.etrn_results()) {
      if (absl::Status ok = internal::ValidateEtrnResult(r, opt_, now);
          !ok.ok()) {
        reject(std::move(ok));
        continue;
      }
      if (r.done_unix_ms() + opt_.tombstone_horizon_ms <= now) continue;
      if (reused(r.node_id(), r.version(), Kind::kEtrnResult, r.request_id())) {
        continue;
      }
      own(r.node_id(), r.version());
      Origin& o = origins_[r.node_id()];
      auto it = o.results.find(r.request_id());
      if (it != o.results.end() && !Newer(r, it->second)) continue;
      if (it == o.results.end() &&
          o.requests.size() + o.results.size() >= opt_.max_etrn_per_origin) {
        over("etrn");
        continue;
      }
      PutRecord(r.node_id(), o, Kind::kEtrnResult, o.results, r.request_id(), r,
                &batch);
      changes.etrn_results.push_back(r);
      ++stats_.applied;
    }

    for (const v1::NodeStatus& st : delta.node_statuses()) {
      if (absl::Status ok =
              internal::ValidateNodeStatus(st, opt_, now, /*local=*/false);
          !ok.ok()) {
        if (absl::IsResourceExhausted(ok)) ++stats_.statuses_oversize;
        reject(std::move(ok));
        continue;
      }
      if (st.hlc().wall_ms() + opt_.tombstone_horizon_ms <= now) continue;
      if (reused(st.node_id(), st.version(), Kind::kStatus, "")) continue;
      own(st.node_id(), st.version());
      Origin& o = origins_[st.node_id()];
      auto it = o.statuses.find("");
      if (it != o.statuses.end()) {
        int c = CompareHlc(st.hlc(), it->second.hlc());
        if (c < 0 || (c == 0 && !Newer(st, it->second))) continue;
      }
      PutRecord(st.node_id(), o, Kind::kStatus, o.statuses, std::string(), st,
                &batch);
      hlc_.Update(st.hlc());
      changes.node_statuses.push_back(st);
      ++stats_.applied;
    }

    std::map<std::string, uint64_t> through;
    for (const v1::OriginVersion& t : delta.through()) {
      if (!internal::ValidToken(t.node_id())) {
        reject(absl::InvalidArgumentError("delta: bad origin in through"));
        continue;
      }
      uint64_t& v = through[t.node_id()];
      v = Max(v, t.version());
    }

    // The sender's floors: a drop we did not know of restarts our resync
    // against this newer truth.
    for (const v1::OriginVersion& f : delta.floors()) {
      if (!internal::ValidToken(f.node_id())) continue;
      Origin& o = origins_[f.node_id()];
      if (f.version() > o.floor) {
        o.floor = f.version();
        touched.insert(f.node_id());
        resync_progress_.clear();
      }
    }
    // Resync: drop our policy records of the origin in (resync_from,
    // through] that the sender no longer has, and note how far it went.
    std::map<std::string, uint64_t> from;
    for (const v1::OriginVersion& f : delta.resync_from()) {
      from[f.node_id()] = f.version();
    }
    for (const std::string& origin : delta.resync_origins()) {
      auto t = through.find(origin);
      if (t == through.end()) continue;
      uint64_t lo = from.contains(origin) ? from[origin] : 0;
      uint64_t& progress = resync_progress_[origin];
      if (progress >= lo) progress = Max(progress, t->second);
      auto oit = origins_.find(origin);
      if (oit == origins_.end()) continue;
      std::set<std::string_view> sent;
      for (const v1::PolicyEntry& p : delta.policies()) {
        if (p.author_node() == origin) sent.insert(p.subject());
      }
      Origin& o = oit->second;
      for (auto it = o.policies.begin(); it != o.policies.end();) {
        auto cur = it++;
        uint64_t v = cur->second.version();
        if (v <= lo || v > t->second || sent.contains(cur->first)) continue;
        std::string subject = cur->first;
        std::optional<v1::PolicyEntry> before = WinnerCopy(subject);
        EraseRecord(origin, o, Kind::kPolicy, o.policies, cur, &batch);
        NoteWinner(subject, before, &changes);
        touched.insert(origin);
      }
    }
    if (delta.resync_origins_size() > 0) ++stats_.resyncs_applied;
    if (delta.resync_complete()) resync_progress_.clear();

    // Policy live sets: the sender covers these versions and holds only
    // the listed ones; ours it does not list are dead (PolicyLiveSet).
    for (const v1::PolicyLiveSet& ls : delta.policy_live()) {
      auto oit = origins_.find(ls.node_id());
      if (oit == origins_.end()) continue;
      std::set<uint64_t> live(ls.versions().begin(), ls.versions().end());
      Origin& o = oit->second;
      for (auto it = o.policies.begin(); it != o.policies.end();) {
        auto cur = it++;
        uint64_t v = cur->second.version();
        if (v > ls.through() || live.contains(v)) continue;
        std::string subject = cur->first;
        std::optional<v1::PolicyEntry> before = WinnerCopy(subject);
        EraseRecord(ls.node_id(), o, Kind::kPolicy, o.policies, cur, &batch);
        NoteWinner(subject, before, &changes);
        ++stats_.policies_repaired;
      }
    }

    for (const auto& [origin, version] : through) {
      Origin& o = origins_[origin];
      if (version > o.version) {
        o.version = version;
        touched.insert(origin);
      }
    }
    for (const std::string& origin : touched) {
      PutDigestRow(origin, origins_[origin], &batch);
    }
    if (absl::Status w = Persist(batch, /*sync=*/false); !w.ok()) return w;
  }
  Notify(changes);
  return changes;
}

// ---- Queries.

std::vector<v1::PolicyEntry> FleetStateImpl::PolicyLive(int64_t now_ms) const {
  absl::ReaderMutexLock l(&mu_);
  std::vector<v1::PolicyEntry> out;
  for (const auto& [subject, origins] : subject_origins_) {
    const v1::PolicyEntry* w = Winner(subject);
    if (w != nullptr && Live(*w, now_ms)) out.push_back(*w);
  }
  return out;
}

std::optional<v1::PolicyEntry> FleetStateImpl::PolicyLookup(
    std::string_view subject, int64_t now_ms) const {
  absl::ReaderMutexLock l(&mu_);
  const v1::PolicyEntry* w = Winner(subject);
  if (w == nullptr || !Live(*w, now_ms)) return std::nullopt;
  return *w;
}

std::vector<v1::RateSlot> FleetStateImpl::RatesInWindow(
    int64_t window_start_sec, std::string_view key) const {
  absl::ReaderMutexLock l(&mu_);
  std::vector<v1::RateSlot> out;
  for (const auto& [origin, o] : origins_) {
    auto it = key.empty()
                  ? o.rates.begin()
                  : o.rates.lower_bound(StrCat(key, std::string(1, '\0')));
    for (; it != o.rates.end(); ++it) {
      if (!key.empty() && it->second.key() != key) break;
      if (it->second.slot_start() >= window_start_sec)
        out.push_back(it->second);
    }
  }
  return out;
}

std::vector<RateTotal> FleetStateImpl::TopRates(int64_t window_start_sec,
                                                size_t n,
                                                std::string_view field,
                                                const RateFilter& want) const {
  absl::ReaderMutexLock l(&mu_);
  // From the running totals (one entry per key and slot start, kept as
  // slots are stored and erased): no slot is read. Keys point into
  // rate_totals_, which the lock keeps in place.
  std::vector<std::pair<std::string_view, RateCounts>> sums;
  sums.reserve(rate_totals_.size());
  for (const auto& [key, slots] : rate_totals_) {
    RateCounts a;
    bool any = false;
    for (const SlotTotal& t : slots) {
      if (t.slot_start < window_start_sec) continue;
      any = true;
      a.messages += t.counts.messages;
      a.recipients += t.counts.recipients;
      a.auth_failures += t.counts.auth_failures;
      a.aborts += t.counts.aborts;
      a.excesses += t.counts.excesses;
    }
    if (any) sums.emplace_back(key, a);
  }
  struct Entry {
    std::string_view key;
    const RateCounts* counts;
    uint64_t rank;
  };
  std::vector<Entry> order;
  for (const auto& [key, a] : sums) {
    if (want && !want(key, a)) continue;
    order.push_back(Entry{key, &a, a.Field(field)});
  }
  auto before = [](const Entry& x, const Entry& y) {
    if (x.rank != y.rank) return x.rank > y.rank;
    return x.key < y.key;
  };
  size_t k = std::min(n, order.size());
  std::partial_sort(order.begin(), order.begin() + static_cast<ptrdiff_t>(k),
                    order.end(), before);
  std::vector<RateTotal> out;
  out.reserve(k);
  for (size_t i = 0; i < k; ++i) {
    out.push_back(RateTotal{std::string(order[i].key), *order[i].counts});
  }
  return out;
}

std::vector<v1::EtrnRequest> FleetStateImpl::EtrnRequests(
    int64_t now_ms) const {
  absl::ReaderMutexLock l(&mu_);
  std::vector<v1::EtrnRequest> out;
  for (const auto& [origin, o] : origins_) {
    for (const auto& [id, r] : o.requests) {
      if (r.expires_unix_ms() > now_ms) out.push_back(r);
    }
  }
  return out;
}

std::vector<v1::EtrnResult> FleetStateImpl::EtrnResults(
    std::string_view request_id) const {
  absl::ReaderMutexLock l(&mu_);
  std::vector<v1::EtrnResult> out;
  for (const auto& [origin, o] : origins_) {
    auto it = o.results.find(std::string(request_id));
    if (it != o.results.end()) out.push_back(it->second);
  }
  return out;
}

std::vector<v1::NodeStatus> FleetStateImpl::NodeStatuses() const {
  absl::ReaderMutexLock l(&mu_);
  std::vector<v1::NodeStatus> out;
  for (const auto& [origin, o] : origins_) {
    auto it = o.statuses.find("");
    if (it != o.statuses.end()) out.push_back(it->second);
  }
  return out;
}

std::vector<v1::PolicyEntry> FleetStateImpl::PolicyAll() const {
  absl::ReaderMutexLock l(&mu_);
  std::vector<v1::PolicyEntry> out;
  for (const auto& [subject, origins] : subject_origins_) {
    const v1::PolicyEntry* w = Winner(subject);
    if (w != nullptr) out.push_back(*w);
  }
  return out;
}

// ---- Expiry.

void FleetStateImpl::DropSubject(const std::string& subject, Batch* b) {
  auto s = subject_origins_.find(subject);
  if (s == subject_origins_.end()) return;
  std::vector<std::string> holders(s->second.begin(), s->second.end());
  for (const std::string& origin : holders) {
    Origin& o = origins_[origin];
    auto rec = o.policies.find(subject);
    if (rec != o.policies.end()) {
      EraseRecord(origin, o, Kind::kPolicy, o.policies, rec, b);
    }
  }
}

void FleetStateImpl::DropPolicy(const std::string& origin,
                                const std::string& subject, Batch* b,
                                size_t* dropped) {
  Origin& o = origins_[origin];
  auto it = o.policies.find(subject);
  if (it == o.policies.end()) return;
  o.floor = Max(o.floor, it->second.version());
  EraseRecord(origin, o, Kind::kPolicy, o.policies, it, b);
  ++*dropped;
}

absl::StatusOr<ExpireStats> FleetStateImpl::Expire() {
  absl::MutexLock l(&mu_);
  int64_t now = NowMs();
  int64_t window_sec =
      static_cast<int64_t>(opt_.rate_slot_seconds) * opt_.rate_window_slots;
  ExpireStats st;
  Batch batch;
  std::vector<std::pair<std::string, std::string>> gc;  // (origin, subject)
  for (auto& [origin, o] : origins_) {
    for (auto it = o.rates.begin(); it != o.rates.end();) {
      auto cur = it++;
      if (cur->second.slot_start() + window_sec <= now / 1000) {
        EraseRecord(origin, o, Kind::kRate, o.rates, cur, &batch);
        ++st.rate_slots;
      }
    }
    for (auto it = o.requests.begin(); it != o.requests.end();) {
      auto cur = it++;
      if (cur->second.expires_unix_ms() <= now) {
        EraseRecord(origin, o, Kind::kEtrnRequest, o.requests, cur, &batch);
        ++st.etrn_requests;
      }
    }
    for (auto it = o.results.begin(); it != o.results.end();) {
      auto cur = it++;
      if (cur->second.done_unix_ms() + opt_.tombstone_horizon_ms <= now) {
        EraseRecord(origin, o, Kind::kEtrnResult, o.results, cur, &batch);
        ++st.etrn_results;
      }
    }
    for (auto it = o.statuses.begin(); it != o.statuses.end();) {
      auto cur = it++;
      if (cur->second.hlc().wall_ms() + opt_.tombstone_horizon_ms <= now) {
        EraseRecord(origin, o, Kind::kStatus, o.statuses, cur, &batch);
        ++st.node_statuses;
      }
    }
    for (const auto& [subject, p] : o.policies) {
      std::optional<int64_t> t = GcTime(p);
      if (t && *t + opt_.tombstone_horizon_ms <= now) {
        gc.emplace_back(origin, subject);
      }
    }
  }
  for (const auto& [origin, subject] : gc) {
    DropPolicy(origin, subject, &batch, &st.policies);
  }
  for (const auto& [origin, o] : origins_) {
    // Floors may have moved: persist every digest row (few origins).
    PutDigestRow(origin, o, &batch);
  }
  for (auto it = claims_.begin(); it != claims_.end();) {
    auto cur = it++;
    if (cur->second <= now) {
      if (store_) batch.emplace_back(StrCat("c", cur->first), std::nullopt);
      claims_.erase(cur);
    }
  }
  stats_.expired += st.rate_slots + st.policies + st.etrn_requests +
                    st.etrn_results + st.node_statuses;
  if (absl::Status w = Persist(batch, false); !w.ok()) return w;
  return st;
}

FleetStateStats FleetStateImpl::Stats() const {
  absl::ReaderMutexLock l(&mu_);
  FleetStateStats s = stats_;
  s.resyncs_served = resyncs_served_.load(std::memory_order_relaxed);
  s.origins = origins_.size();
  s.rate_slots = s.policies = s.etrn_requests = s.etrn_results = 0;
  s.node_statuses = 0;
  for (const auto& [origin, o] : origins_) {
    s.rate_slots += o.rates.size();
    s.policies += o.policies.size();
    s.etrn_requests += o.requests.size();
    s.etrn_results += o.results.size();
    s.node_statuses += o.statuses.size();
  }
  return s;
}

absl::Status CheckArgs(const std::string& node_id,
                       const FleetStateOptions& opt) {
  if (!internal::ValidToken(node_id)) {
    return absl::InvalidArgumentError(
        "fleet state: node id empty, long or with spaces");
  }
  if (opt.rate_slot_seconds <= 0 || opt.rate_window_slots <= 0 ||
      opt.tombstone_horizon_ms < 0 || opt.max_clock_skew_ms < 0 ||
      opt.max_etrn_ttl_ms <= 0) {
    return absl::InvalidArgumentError(
        "fleet state: rate slot, window, horizon, skew and ETRN TTL must be "
        "positive");
  }
  return absl::OkStatus();
}

}  // namespace

uint64_t RateCounts::Field(std::string_view field) const {
  if (field == "messages") return messages;
  if (field == "recipients") return recipients;
  if (field == "auth_failures") return auth_failures;
  if (field == "aborts") return aborts;
  if (field == "excesses") return excesses;
  return 0;
}

bool DeltaHasContent(const v1::Delta& d) {
  return d.rates_size() > 0 || d.policies_size() > 0 ||
         d.etrn_requests_size() > 0 || d.etrn_results_size() > 0 ||
         d.node_statuses_size() > 0 || d.policy_live_size() > 0 ||
         d.resync_origins_size() > 0;
}

absl::StatusOr<std::unique_ptr<FleetState>> FleetState::InMemory(
    std::string node_id, uint64_t generation, FleetStateOptions options) {
  if (absl::Status ok = CheckArgs(node_id, options); !ok.ok()) return ok;
  return std::unique_ptr<FleetState>(new FleetStateImpl(
      std::move(node_id), generation, std::move(options), nullptr));
}

absl::StatusOr<std::unique_ptr<FleetState>> FleetState::Open(
    const std::string& path, std::string node_id, uint64_t generation,
    FleetStateOptions options) {
  if (absl::Status ok = CheckArgs(node_id, options); !ok.ok()) return ok;
  absl::StatusOr<std::unique_ptr<internal::Store>> store =
      internal::OpenRocksStore(path);
  if (!store.ok()) return store.status();
  auto st = std::make_unique<FleetStateImpl>(
      std::move(node_id), generation, std::move(options), std::move(*store));
  if (absl::Status loaded = st->Load(); !loaded.ok()) return loaded;
  return std::unique_ptr<FleetState>(std::move(st));
}

}  // namespace zm::cluster
