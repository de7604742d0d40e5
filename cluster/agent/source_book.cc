// The source book: minute buckets of tracked keys and reported limits.
#include "cluster/agent/source_book.h"

#include <algorithm>
#include <tuple>

namespace zm::cluster {

namespace pb = ::zmnode::cluster::v1;

namespace {
int64_t MinuteOf(int64_t sec) { return sec - ((sec % 60) + 60) % 60; }
}  // namespace

SourceBook::SourceBook(SourceBookOptions opts) : opts_(opts) {}

void SourceBook::Prune(Key& k, int64_t now_sec) const {
  const int64_t oldest = MinuteOf(now_sec) - 60LL * (opts_.minutes - 1);
  k.minutes.erase(k.minutes.begin(), k.minutes.lower_bound(oldest));
}

void SourceBook::OnRates(const std::vector<pb::RateSlot>& slots,
                         int64_t now_sec) {
  absl::MutexLock l(&mu_);
  if (keys_.empty()) return;
  const int64_t minute = MinuteOf(now_sec);
  for (const pb::RateSlot& s : slots) {
    auto it = keys_.find(s.key());
    if (it == keys_.end()) continue;
    Key& k = it->second;
    uint64_t& seen =
        k.seen[std::make_tuple(s.node_id(), s.generation(), s.slot_start())];
    if (s.messages() > seen) {
      k.minutes[minute] += s.messages() - seen;
      seen = s.messages();
    }
  }
}

void SourceBook::Track(const std::vector<std::string>& keys,
                       const std::vector<pb::RateSlot>& window,
                       int64_t now_sec) {
  absl::MutexLock l(&mu_);
  std::unordered_map<std::string, Key> next;
  for (const std::string& key : keys) {
    if (next.size() >= opts_.max_tracked) break;
    if (next.contains(key)) continue;
    auto old = keys_.find(key);
    if (old != keys_.end()) {
      next.emplace(key, std::move(old->second));
    } else {
      next.emplace(key, Key{});
    }
  }
  // Slot values as held now: growth is counted from here. Slots that left
  // the window are forgotten.
  for (auto& [key, k] : next) k.seen.clear();
  for (const pb::RateSlot& s : window) {
    auto it = next.find(s.key());
    if (it == next.end()) continue;
    uint64_t& seen = it->second.seen[std::make_tuple(
        s.node_id(), s.generation(), s.slot_start())];
    seen = std::max(seen, s.messages());
  }
  for (auto& [key, k] : next) Prune(k, now_sec);
  keys_ = std::move(next);
}

bool SourceBook::Tracked(const std::string& key) const {
  absl::MutexLock l(&mu_);
  return keys_.contains(key);
}

size_t SourceBook::tracked() const {
  absl::MutexLock l(&mu_);
  return keys_.size();
}

std::vector<uint64_t> SourceBook::Spark(const std::string& key,
                                        int64_t now_sec) const {
  std::vector<uint64_t> out(static_cast<size_t>(opts_.minutes), 0);
  absl::MutexLock l(&mu_);
  auto it = keys_.find(key);
  if (it == keys_.end()) return out;
  const int64_t last = MinuteOf(now_sec);
  const int64_t first = last - 60LL * (opts_.minutes - 1);
  for (const auto& [minute, n] : it->second.minutes) {
    if (minute < first || minute > last) continue;
    out[static_cast<size_t>((minute - first) / 60)] = n;
  }
  return out;
}

void SourceBook::SetLimit(const pb::SourceLimit& limit) {
  absl::MutexLock l(&mu_);
  auto it = limits_.find(limit.key());
  if (it != limits_.end()) {
    limit_order_.erase(it->second);
    limits_.erase(it);
  }
  limit_order_.push_front(limit);
  limits_[limit.key()] = limit_order_.begin();
  while (limits_.size() > opts_.max_limits) {
    limits_.erase(limit_order_.back().key());
    limit_order_.pop_back();
  }
}

std::optional<pb::SourceLimit> SourceBook::Limit(const std::string& key) const {
  absl::MutexLock l(&mu_);
  auto it = limits_.find(key);
  if (it == limits_.end()) return std::nullopt;
  return *it->second;
}

}  // namespace zm::cluster
