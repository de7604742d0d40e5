// The rate-tracker: sharded in-memory window, flushed to RocksDB by a
// background thread.
#include "node/ratetrack/rate_tracker.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <functional>
#include <list>
#include <map>
#include <optional>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "node/ratetrack/ratetrack_store.h"

namespace zm::ratetrack {
namespace {

using internal::Entry;

constexpr size_t kShards = 16;
// The background flusher drops expired keys every this many flushes.
constexpr int kSweepEvery = 30;

struct StrHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const {
    return std::hash<std::string_view>{}(s);
  }
};

struct KeyState {
  std::vector<Entry> entries;
  std::list<std::string>::iterator lru;  // this key's place in Shard::lru
};

struct Shard {
  mutable absl::Mutex mu;
  std::unordered_map<std::string, KeyState, StrHash, std::equal_to<>> keys
      ABSL_GUARDED_BY(mu);
  std::list<std::string> lru ABSL_GUARDED_BY(mu);  // front: used last
  // Keys whose row must be rewritten (or deleted, when no longer in keys).
  std::unordered_set<std::string> dirty ABSL_GUARDED_BY(mu);
  // Keys added to locally since the last TakeLocalChanges.
  std::unordered_set<std::string> local_changed ABSL_GUARDED_BY(mu);
};

int64_t FloorTo(int64_t t, int64_t step) {
  int64_t q = t / step;
  if (t % step != 0 && t < 0) --q;
  return q * step;
}

void MaxInto(Counts& into, const Counts& c) {
  into.messages = std::max(into.messages, c.messages);
  into.recipients = std::max(into.recipients, c.recipients);
  into.auth_failures = std::max(into.auth_failures, c.auth_failures);
  into.aborts = std::max(into.aborts, c.aborts);
  into.excesses = std::max(into.excesses, c.excesses);
}

bool SameCounts(const Counts& a, const Counts& b) {
  return a.messages == b.messages && a.recipients == b.recipients &&
         a.auth_failures == b.auth_failures && a.aborts == b.aborts &&
         a.excesses == b.excesses;
}

class Tracker : public RateTracker {
 public:
  Tracker(std::string node_id, RateWindow window,
          std::unique_ptr<internal::Store> store)
      : node_id_(std::move(node_id)),
        slots_(std::max(1, window.slots)),
        slot_seconds_(std::max(1, window.slot_seconds)),
        per_shard_cap_(std::max<size_t>(1, window.max_keys / kShards)),
        store_(std::move(store)) {}

  ~Tracker() override {
    if (flusher_.joinable()) {
      {
        absl::MutexLock lock(&stop_mu_);
        stop_ = true;
      }
      flusher_.join();
    }
    (void)Flush();
  }

  // Fills memory from the store's rows (at Open, before any other use).
  void Restore(const std::vector<std::pair<std::string, std::string>>& rows) {
    for (const auto& [key, value] : rows) {
      std::vector<Entry> entries = internal::DecodeRow(value);
      if (entries.empty()) continue;
      Shard& shard = ShardOf(key);
      absl::MutexLock lock(&shard.mu);
      if (shard.keys.size() >= per_shard_cap_) {
        shard.dirty.insert(key);  // over the bound: forget it on disk too
        continue;
      }
      KeyState& ks = Insert(shard, key);
      for (Entry& e : entries) {
        e.slot_start = FloorTo(e.slot_start, slot_seconds_);
        bool merged = false;
        for (Entry& have : ks.entries) {
          if (have.slot_start == e.slot_start && have.node == e.node) {
            have.counts += e.counts;  // window's slot length changed
            merged = true;
          }
        }
        if (!merged) ks.entries.push_back(std::move(e));
      }
    }
  }

  void StartFlusher() {
    flusher_ = std::thread([this] { FlushLoop(); });
  }

  void Add(std::string_view key, const Counts& delta,
           int64_t now_sec) override {
    NoteNow(now_sec);
    const int64_t slot = FloorTo(now_sec, slot_seconds_);
    Shard& shard = ShardOf(key);
    absl::MutexLock lock(&shard.mu);
    KeyState* ks = Find(shard, key);
    if (ks == nullptr) ks = &Insert(shard, key);
    Prune(*ks, OldestSlot(now_sec));
    Entry* mine = nullptr;
    for (Entry& e : ks->entries) {
      if (e.slot_start == slot && e.node == node_id_) mine = &e;
    }
    if (mine == nullptr) {
      ks->entries.push_back(Entry{slot, node_id_, {}, now_sec});
      mine = &ks->entries.back();
    }
    mine->counts += delta;
    mine->changed_sec = now_sec;
    shard.dirty.emplace(key);
    shard.local_changed.emplace(key);
  }

  Counts Get(std::string_view key, int64_t now_sec) const override {
    NoteNow(now_sec);
    Counts total;
    const int64_t oldest = OldestSlot(now_sec);
    Shard& shard = ShardOf(key);
    absl::MutexLock lock(&shard.mu);
    KeyState* ks = Find(shard, key);
    if (ks == nullptr) return total;
    for (const Entry& e : ks->entries) {
      if (e.slot_start >= oldest) total += e.counts;
    }
    return total;
  }

  std::vector<TopEntry> Top(size_t n, std::string_view field,
                            int64_t now_sec) const override {
    const int64_t oldest = OldestSlot(now_sec);
    std::vector<TopEntry> all;
    for (const Shard& shard : shards_) {
      absl::MutexLock lock(&shard.mu);
      for (const auto& [key, ks] : shard.keys) {
        TopEntry t;
        std::map<std::string, Counts> per_node;
        for (const Entry& e : ks.entries) {
          if (e.slot_start < oldest) continue;
          t.total += e.counts;
          per_node[e.node] += e.counts;
        }
        if (FieldValue(t.total, field) == 0) continue;
        t.key = key;
        t.per_node.assign(per_node.begin(), per_node.end());
        all.push_back(std::move(t));
      }
    }
    auto better = [field](const TopEntry& a, const TopEntry& b) {
      uint64_t va = FieldValue(a.total, field), vb = FieldValue(b.total, field);
      return va != vb ? va > vb : a.key < b.key;
    };
    if (all.size() > n) {
      std::partial_sort(all.begin(), all.begin() + n, all.end(), better);
      all.resize(n);
    } else {
      std::sort(all.begin(), all.end(), better);
    }
    return all;
  }

  std::vector<SlotCount> LocalSlotsSince(int64_t since_sec) const override {
    std::vector<SlotCount> out;
    for (const Shard& shard : shards_) {
      absl::MutexLock lock(&shard.mu);
      for (const auto& [key, ks] : shard.keys) {
        for (const Entry& e : ks.entries) {
          if (e.node == node_id_ && e.changed_sec >= since_sec) {
            out.push_back(SlotCount{key, e.node, e.slot_start, e.counts});
          }
        }
      }
    }
    return out;
  }

  std::vector<SlotCount> TakeLocalChanges(int64_t now_sec) override {
    const int64_t oldest = OldestSlot(now_sec);
    std::vector<SlotCount> out;
    for (Shard& shard : shards_) {
      std::unordered_set<std::string> changed;
      absl::MutexLock lock(&shard.mu);
      changed.swap(shard.local_changed);
      for (const std::string& key : changed) {
        auto it = shard.keys.find(key);
        if (it == shard.keys.end()) continue;  // forgotten since
        for (const Entry& e : it->second.entries) {
          if (e.node == node_id_ && e.slot_start >= oldest) {
            out.push_back(SlotCount{key, e.node, e.slot_start, e.counts});
          }
        }
      }
    }
    return out;
  }

  void MergePeer(const std::vector<SlotCount>& slots) override {
    const int64_t latest = latest_now_.load(std::memory_order_relaxed);
    const int64_t oldest = latest > 0 ? OldestSlot(latest) : INT64_MIN;
    for (const SlotCount& sc : slots) {
      if (sc.key.empty() || sc.node_id.empty() ||
          sc.node_id.find_first_of(" \t\n") != std::string::npos) {
        continue;  // would not survive the row encoding
      }
      const int64_t slot = FloorTo(sc.slot_start, slot_seconds_);
      if (slot < oldest) continue;
      Shard& shard = ShardOf(sc.key);
      absl::MutexLock lock(&shard.mu);
      KeyState* ks = Find(shard, sc.key);
      if (ks == nullptr) ks = &Insert(shard, sc.key);
      Entry* have = nullptr;
      for (Entry& e : ks->entries) {
        if (e.slot_start == slot && e.node == sc.node_id) have = &e;
      }
      if (have == nullptr) {
        ks->entries.push_back(Entry{slot, sc.node_id, sc.counts, 0});
      } else {
        Counts before = have->counts;
        MaxInto(have->counts, sc.counts);
        if (SameCounts(before, have->counts)) continue;
      }
      shard.dirty.insert(sc.key);
    }
  }

  absl::Status Flush() override {
    if (store_ == nullptr) return absl::OkStatus();
    // One flush at a time, so an older row never overwrites a newer one.
    absl::MutexLock flush_lock(&flush_mu_);
    std::vector<std::pair<std::string, std::optional<std::string>>> rows;
    for (Shard& shard : shards_) {
      absl::MutexLock lock(&shard.mu);
      for (const std::string& key : shard.dirty) {
        KeyState* ks = Find(shard, key);
        if (ks == nullptr || ks->entries.empty()) {
          rows.emplace_back(key, std::nullopt);
        } else {
          rows.emplace_back(key, internal::EncodeRow(ks->entries));
        }
      }
      shard.dirty.clear();
    }
    if (rows.empty() || read_only_) return absl::OkStatus();
    absl::Status s = store_->Write(rows);
    if (!s.ok()) {
      // Keep them pending for the next flush.
      for (const auto& row : rows) {
        Shard& shard = ShardOf(row.first);
        absl::MutexLock lock(&shard.mu);
        shard.dirty.insert(row.first);
      }
    }
    return s;
  }

  size_t KeyCount() const override {
    size_t n = 0;
    for (const Shard& shard : shards_) {
      absl::MutexLock lock(&shard.mu);
      n += shard.keys.size();
    }
    return n;
  }

  void set_read_only() { read_only_ = true; }

 private:
  Shard& ShardOf(std::string_view key) const {
    return shards_[StrHash{}(key) % kShards];
  }

  int64_t OldestSlot(int64_t now_sec) const {
    return FloorTo(now_sec, slot_seconds_) -
           static_cast<int64_t>(slots_ - 1) * slot_seconds_;
  }

  void NoteNow(int64_t now_sec) const {
    int64_t seen = latest_now_.load(std::memory_order_relaxed);
    while (now_sec > seen && !latest_now_.compare_exchange_weak(
                                 seen, now_sec, std::memory_order_relaxed)) {
    }
  }

  // Finds `key` and marks it used last.
  static KeyState* Find(Shard& shard, std::string_view key)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu) {
    auto it = shard.keys.find(key);
    if (it == shard.keys.end()) return nullptr;
    shard.lru.splice(shard.lru.begin(), shard.lru, it->second.lru);
    return &it->second;
  }

  // Adds `key` (absent), forgetting the least recently used key of the
  // shard when the shard is full.
  KeyState& Insert(Shard& shard, std::string_view key)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu) {
    while (shard.keys.size() >= per_shard_cap_ && !shard.lru.empty()) {
      std::string victim = std::move(shard.lru.back());
      shard.lru.pop_back();
      shard.keys.erase(victim);
      shard.dirty.insert(std::move(victim));
    }
    shard.lru.emplace_front(key);
    KeyState& ks = shard.keys[shard.lru.front()];
    ks.lru = shard.lru.begin();
    return ks;
  }

  static bool Prune(KeyState& ks, int64_t oldest) {
    size_t before = ks.entries.size();
    std::erase_if(ks.entries,
                  [oldest](const Entry& e) { return e.slot_start < oldest; });
    return ks.entries.size() != before;
  }

  // Forgets keys with nothing left in the window.
  void Sweep() {
    const int64_t latest = latest_now_.load(std::memory_order_relaxed);
    if (latest <= 0) return;
    const int64_t oldest = OldestSlot(latest);
    for (Shard& shard : shards_) {
      absl::MutexLock lock(&shard.mu);
      for (auto it = shard.keys.begin(); it != shard.keys.end();) {
        if (Prune(it->second, oldest)) shard.dirty.insert(it->first);
        if (it->second.entries.empty()) {
          shard.dirty.insert(it->first);
          shard.lru.erase(it->second.lru);
          it = shard.keys.erase(it);
        } else {
          ++it;
        }
      }
    }
  }

  void FlushLoop() {
    for (int round = 1;; ++round) {
      {
        absl::MutexLock lock(&stop_mu_);
        stop_mu_.AwaitWithTimeout(absl::Condition(&stop_), absl::Seconds(1));
        if (stop_) return;
      }
      if (round % kSweepEvery == 0) Sweep();
      (void)Flush();  // failures stay pending and are retried
    }
  }

  const std::string node_id_;
  const int slots_;
  const int slot_seconds_;
  const size_t per_shard_cap_;
  mutable std::array<Shard, kShards> shards_;
  mutable std::atomic<int64_t> latest_now_{0};
  std::unique_ptr<internal::Store> store_;
  bool read_only_ = false;
  absl::Mutex flush_mu_;
  absl::Mutex stop_mu_;
  bool stop_ ABSL_GUARDED_BY(stop_mu_) = false;
  std::thread flusher_;
};

std::string StorePath(const NodeDir& node) { return node.db() + "/ratetrack"; }

}  // namespace

absl::StatusOr<std::unique_ptr<RateTracker>> RateTracker::Open(
    const NodeDir& node, std::string node_id, RateWindow window) {
  absl::StatusOr<std::unique_ptr<internal::Store>> store =
      internal::Store::Open(StorePath(node), /*read_only=*/false);
  if (!store.ok()) return store.status();
  std::vector<std::pair<std::string, std::string>> rows;
  if (absl::Status s = (*store)->Load(&rows); !s.ok()) return s;
  auto t = std::make_unique<Tracker>(std::move(node_id), window,
                                     *std::move(store));
  t->Restore(rows);
  t->StartFlusher();
  return std::unique_ptr<RateTracker>(std::move(t));
}

absl::StatusOr<std::unique_ptr<RateTracker>> RateTracker::OpenReadOnly(
    const NodeDir& node, RateWindow window) {
  std::vector<std::pair<std::string, std::string>> rows;
  {
    absl::StatusOr<std::unique_ptr<internal::Store>> store =
        internal::Store::Open(StorePath(node), /*read_only=*/true);
    if (!store.ok()) return store.status();
    if (absl::Status s = (*store)->Load(&rows); !s.ok()) return s;
  }
  auto t = std::make_unique<Tracker>("", window, nullptr);
  t->set_read_only();
  t->Restore(rows);
  return std::unique_ptr<RateTracker>(std::move(t));
}

std::unique_ptr<RateTracker> RateTracker::InMemory(std::string node_id,
                                                   RateWindow window) {
  return std::make_unique<Tracker>(std::move(node_id), window, nullptr);
}

}  // namespace zm::ratetrack
