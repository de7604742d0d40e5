// zm::cluster::SourceBook: what the agent remembers about rate sources
// beyond the rate slots themselves, for the local service's TopSources:
//   - per-minute message counts of the last hour (the sparkline), kept only
//     for tracked keys (the busiest keys and those recently shown), so the
//     memory stays bounded whatever the number of sources;
//   - the limit the smtpserver's policy last applied to each key
//     (ReportRates' SourceLimit), bounded, least recently reported dropped.
//
// Counts come from rate-slot changes (FleetState's Changes: local reports
// and peers' merges alike): a slot that grew by n messages adds n to the
// current minute of its key. A key starts being tracked with no history
// (earlier minutes count 0).
//
//   SourceBook book({.max_tracked = 256});
//   book.Track(top_keys, slots_of_those_keys, now_sec);         // each minute
//   book.OnRates(changes.rates, now_sec);                       // listener
//   std::vector<uint64_t> spark = book.Spark("ip4:192.0.2.7", now_sec);
//
// Thread-safe.
#ifndef ZM_CLUSTER_AGENT_SOURCE_BOOK_H_
#define ZM_CLUSTER_AGENT_SOURCE_BOOK_H_

#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "zmnode/cluster/v1/local.pb.h"

namespace zm::cluster {

struct SourceBookOptions {
  size_t max_tracked = 256;   // keys with minute buckets
  size_t max_limits = 100000; // keys with a reported limit
  int minutes = 60;           // sparkline length
};

class SourceBook {
 public:
  explicit SourceBook(SourceBookOptions opts = {});

  // Rate slots as now stored (grown or new); counts their growth.
  void OnRates(const std::vector<::zmnode::cluster::v1::RateSlot>& slots,
               int64_t now_sec);
  // Makes `keys` the tracked set (at most max_tracked, first ones first),
  // keeping the buckets of keys already tracked. `window` are the slots
  // held now: a newly tracked key's slot values start from them, so what
  // happened before does not count as growth.
  void Track(const std::vector<std::string>& keys,
             const std::vector<::zmnode::cluster::v1::RateSlot>& window,
             int64_t now_sec);
  bool Tracked(const std::string& key) const;
  // Messages per minute, `minutes` entries, oldest first, the last the
  // minute holding now_sec. Zeros for an untracked key.
  std::vector<uint64_t> Spark(const std::string& key, int64_t now_sec) const;

  void SetLimit(const ::zmnode::cluster::v1::SourceLimit& limit);
  std::optional<::zmnode::cluster::v1::SourceLimit> Limit(
      const std::string& key) const;

  size_t tracked() const;
  size_t capacity() const { return opts_.max_tracked; }

 private:
  struct Key {
    std::map<int64_t, uint64_t> minutes;  // minute start -> messages
    // (node, generation, slot start) -> messages last seen
    std::map<std::tuple<std::string, uint64_t, int64_t>, uint64_t> seen;
  };
  void Prune(Key& k, int64_t now_sec) const;

  const SourceBookOptions opts_;
  mutable absl::Mutex mu_;
  std::unordered_map<std::string, Key> keys_ ABSL_GUARDED_BY(mu_);
  // Limits, most recently set first.
  std::list<::zmnode::cluster::v1::SourceLimit> limit_order_
      ABSL_GUARDED_BY(mu_);
  std::unordered_map<
      std::string, std::list<::zmnode::cluster::v1::SourceLimit>::iterator>
      limits_ ABSL_GUARDED_BY(mu_);
};

}  // namespace zm::cluster

#endif  // ZM_CLUSTER_AGENT_SOURCE_BOOK_H_
