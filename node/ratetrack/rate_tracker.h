// zm::ratetrack::RateTracker: how much each source sent lately.
//
// ZMailer's rate-tracker, kept observable and fixed: a sliding window of
// slots (default 8 slots of 450 s, about one hour) counting, per source,
// messages, recipients, failed AUTHs, aborted DATAs and limit excesses.
// Sources are keyed by IPv4 address, by IPv6 /64 and by authenticated
// user (KeyForIp, KeyForUser). State survives a restart (RocksDB under
// db/ratetrack/). Counts are per node: each slot keeps this node's count
// and the last count each peer reported (a grow-only counter per node and
// slot), so the cluster layer can merge peers' state idempotently and the
// smtpserver reads fleet-wide totals without a network call per message.
//
//   auto rt = RateTracker::Open(node, "node-a", RateWindow{});
//   std::string key = KeyForIp(client_ip);      // "ip4:192.0.2.7"
//   (*rt)->Add(key, Counts{.messages = 1, .recipients = 3}, now_sec);
//   Counts c = (*rt)->Get(key, now_sec);       // local + peers, in window
//
// Thread-safe; Add and Get never block on I/O (writes to RocksDB are
// batched by a background flush every second and at Close()).
#ifndef ZM_RATETRACK_RATE_TRACKER_H_
#define ZM_RATETRACK_RATE_TRACKER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "node/common/node_dir.h"

namespace zm::ratetrack {

struct RateWindow {
  int slots = 8;
  int slot_seconds = 450;
  // Memory bound: at most this many source keys are kept; past it the key
  // used least recently is forgotten (in memory and in RocksDB).
  size_t max_keys = 200000;
};

struct Counts {
  uint64_t messages = 0;
  uint64_t recipients = 0;
  uint64_t auth_failures = 0;
  uint64_t aborts = 0;    // DATA aborted, transactions dropped mid-data
  uint64_t excesses = 0;  // times a limit refused this source

  Counts& operator+=(const Counts& o);
};

// The count fields by name: "messages", "recipients", "auth_failures",
// "aborts", "excesses". FieldValue is 0 for an unknown name.
bool IsCountField(std::string_view field);
uint64_t FieldValue(const Counts& c, std::string_view field);

// "ip4:192.0.2.7", "ip6:2001:db8:1:2::/64" (the /64 of an IPv6 address;
// IPv4-mapped IPv6 counts as IPv4), "user:alice" (lower-cased).
// InvalidArgument for a malformed address.
absl::StatusOr<std::string> KeyForIp(std::string_view ip);
std::string KeyForUser(std::string_view user);

// One slot of one node's counts for one key: the unit of gossip.
struct SlotCount {
  std::string key;
  std::string node_id;
  int64_t slot_start = 0;  // unix seconds, a multiple of slot_seconds
  Counts counts;
};

struct TopEntry {
  std::string key;
  Counts total;  // in the window, all nodes
  std::vector<std::pair<std::string, Counts>> per_node;
};

class RateTracker {
 public:
  static absl::StatusOr<std::unique_ptr<RateTracker>> Open(
      const NodeDir& node, std::string node_id, RateWindow window);
  // A read-only view of the state another process (the smtpserver) keeps
  // open: RocksDB's read-only mode takes no lock. A snapshot as of the
  // call (the writer flushes every second); Add/MergePeer change only
  // this view, Flush writes nothing.
  static absl::StatusOr<std::unique_ptr<RateTracker>> OpenReadOnly(
      const NodeDir& node, RateWindow window);
  // In memory only (tests, sendmail -bs).
  static std::unique_ptr<RateTracker> InMemory(std::string node_id,
                                               RateWindow window);
  virtual ~RateTracker() = default;

  virtual void Add(std::string_view key, const Counts& delta,
                   int64_t now_sec) = 0;
  // The sum over the window ending at now_sec, this node and its peers.
  virtual Counts Get(std::string_view key, int64_t now_sec) const = 0;

  // The top `n` keys by `field` ("messages", "recipients",
  // "auth_failures", "aborts", "excesses") in the window.
  virtual std::vector<TopEntry> Top(size_t n, std::string_view field,
                                    int64_t now_sec) const = 0;

  // Cluster layer: this node's slots changed since `since_sec` (to gossip)
  // and a peer's slots (kept when larger than what is known: merging the
  // same report twice changes nothing).
  virtual std::vector<SlotCount> LocalSlotsSince(int64_t since_sec) const = 0;
  // This node's slots (in the window ending at now_sec) of every key added
  // to locally since the last call, each key once: what a reporter sends
  // without scanning every key.
  virtual std::vector<SlotCount> TakeLocalChanges(int64_t now_sec) = 0;
  virtual void MergePeer(const std::vector<SlotCount>& slots) = 0;

  // Writes what is pending to RocksDB (a no-op in memory).
  virtual absl::Status Flush() = 0;

  // Keys held in memory (for tests and the memory bound).
  virtual size_t KeyCount() const = 0;
};

}  // namespace zm::ratetrack

#endif  // ZM_RATETRACK_RATE_TRACKER_H_
