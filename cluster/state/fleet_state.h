// zm::cluster::FleetState: the replicated fleet state every cluster agent
// keeps (and the simulation harness, in memory).
//
// Four state-based CRDTs from proto/zmnode/cluster/v1/state.proto, each
// record written by exactly one node (its origin) and stamped with that
// origin's version counter, which only grows (persisted, also across
// restarts):
//   - rate slots: (key, node, generation, slot) -> counts, merge = max;
//     dropped once older than the rate window;
//   - policy overlay: per (origin, subject) records, the highest Hlc per
//     subject wins fleet-wide; deletes are tombstones kept for the
//     tombstone horizon (24 h), expired entries likewise;
//   - ETRN requests (by id, dropped at their expiry) and each node's result
//     for each request (which flows back to the origin);
//   - node status: one record per origin (its admind's latest publication:
//     queue summary, per-minute history, version, uptime, admin URL),
//     last-writer-wins by Hlc, bounded in size, dropped a tombstone
//     horizon after its last publication.
//
// Anti-entropy: a node sends its digest (highest version held per origin);
// the peer answers DeltaFor(digest, cap), the records above those versions,
// oldest first per origin, with a `through` version per origin up to which
// the delta is complete; Apply() merges a delta and raises the digest to
// those `through` versions only, so a delta cut at the cap still moves the
// digest forward monotonically and never past a record not received.
// A peer whose digest for some origin lies below a policy record the store
// has dropped (past the horizon) gets a full resync of the policy overlay
// (DeltaBatch::full_resync_origins, Delta.resync_origins).
//
//   FleetStateOptions opt;                       // defaults: 8 x 450 s, 24 h
//   auto st = FleetState::Open("/var/zm/db/cluster", "node-a", gen, opt);
//   (*st)->PutLocalRates({slot});                // this node's counts
//   DeltaBatch out = (*st)->DeltaFor(peer_digest, 256 * 1024);
//   absl::StatusOr<Changes> got = (*st)->Apply(peer_delta);
//   for (const v1::EtrnRequest& r : got->etrn_requests)
//     if (*(*st)->ClaimEtrn(r.id())) { flush; RecordEtrnResult(...); }
//
// Time comes from FleetStateOptions::clock (unix ms), so tests and the
// simulator control it. Thread-safe: every method may be called from any
// thread. Records a peer sends that are malformed (empty key, unaligned
// slot, absurd times, bad subject, over the per-origin bounds) are refused,
// counted and reported in Changes, never applied.
#ifndef ZM_CLUSTER_STATE_FLEET_STATE_H_
#define ZM_CLUSTER_STATE_FLEET_STATE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cluster/state/hlc.h"
#include "zmnode/cluster/v1/state.pb.h"

namespace zm::cluster {

struct FleetStateOptions {
  // Rate slots: slot length and how many make the window (8 x 450 s, as
  // the rate-tracker). Slots older than the window are dropped.
  int rate_slot_seconds = 450;
  int rate_window_slots = 8;
  // Policy tombstones and expired entries are kept at least this long.
  int64_t tombstone_horizon_ms = 24LL * 3600 * 1000;
  // A peer's record stamped further than this in the future is malformed.
  int64_t max_clock_skew_ms = 15LL * 60 * 1000;
  // Longest ETRN request lifetime accepted (StartEtrn and from peers).
  int64_t max_etrn_ttl_ms = 7LL * 24 * 3600 * 1000;
  // Per-origin bounds; past them a peer's new records are refused and
  // local writes fail with ResourceExhausted.
  size_t max_rate_slots_per_origin = 200000;
  size_t max_policies_per_origin = 10000;
  size_t max_etrn_per_origin = 10000;  // requests and results
  // Longest rate key, policy reason, ETRN text accepted.
  size_t max_field_bytes = 512;
  // Largest node status record (serialized) accepted from a peer or
  // published locally.
  size_t max_status_bytes = 32 * 1024;
  // Unix milliseconds; empty = the system clock.
  std::function<int64_t()> clock;
  // fsync (RocksDB WAL sync) local writes, so the version counter never
  // goes back even on power loss. Peers' records are refetchable and are
  // written without sync.
  bool sync_local_writes = true;
};

// One DeltaFor() answer.
struct DeltaBatch {
  v1::Delta delta;
  bool more = false;  // cut at max_bytes: ask again
  // Origins whose policy records the delta carries in full (a resync);
  // also in delta.resync_origins(), for ExchangeReply.
  std::vector<std::string> full_resync_origins;
};

// One rate key's totals over a window, all nodes and generations
// (FleetState::TopRates).
struct RateCounts {
  uint64_t messages = 0;
  uint64_t recipients = 0;
  uint64_t auth_failures = 0;
  uint64_t aborts = 0;
  uint64_t excesses = 0;
  // By field name ("messages", ..., "excesses"); 0 for another name.
  uint64_t Field(std::string_view field) const;
};
struct RateTotal {
  std::string key;
  RateCounts counts;
};

// Whether a delta carries anything for the receiver to apply besides
// `through` (records, a resync, or a policy live set).
bool DeltaHasContent(const v1::Delta& d);

// What a merge (or a local write) changed.
struct Changes {
  std::vector<v1::RateSlot> rates;  // new or grown slots, as now stored
  // For each subject whose winner changed: the new winner (possibly a
  // tombstone; a bare {subject, deleted} when no record is left).
  std::vector<v1::PolicyEntry> policy_winners;
  std::vector<v1::EtrnRequest> etrn_requests;  // first seen, not expired
  std::vector<v1::EtrnResult> etrn_results;    // new or changed
  std::vector<v1::NodeStatus> node_statuses;   // newer than what was held
  // Records refused as malformed or over a bound, and why the first was.
  size_t rejected = 0;
  absl::Status first_rejection;

  // Records changed, all kinds.
  size_t count() const {
    return rates.size() + policy_winners.size() + etrn_requests.size() +
           etrn_results.size() + node_statuses.size();
  }
  bool empty() const {
    return rates.empty() && policy_winners.empty() && etrn_requests.empty() &&
           etrn_results.empty() && node_statuses.empty();
  }
};

// A local policy write.
struct PolicySpec {
  std::string subject;  // IP, CIDR, domain or address; normalised here
  v1::PolicyAction action = v1::POLICY_ACTION_REJECT;
  std::string rate_class;  // POLICY_ACTION_RATE_CLASS only
  std::string reason;
  int64_t ttl_ms = 0;  // 0 = never expires
};

struct FleetStateStats {
  size_t origins = 0;
  size_t rate_slots = 0;
  size_t policies = 0;  // records, all origins, tombstones included
  size_t etrn_requests = 0;
  size_t etrn_results = 0;
  size_t node_statuses = 0;
  uint64_t applied = 0;   // records merged from peers that changed state
  uint64_t rejected = 0;  // records from peers refused
  uint64_t statuses_oversize = 0;  // of which node statuses over the bound
  uint64_t resyncs_served = 0;
  uint64_t resyncs_applied = 0;
  // Policy records dropped because a peer covering their version no longer
  // held them (Delta.policy_live: a tombstone past the horizon killed them).
  uint64_t policies_repaired = 0;
  uint64_t expired = 0;  // records dropped by Expire()
};

struct ExpireStats {
  size_t rate_slots = 0;
  size_t policies = 0;
  size_t etrn_requests = 0;
  size_t etrn_results = 0;
  size_t node_statuses = 0;
};

// Lower case, canonical CIDR/IP text: "192.0.2.7", "198.51.100.0/24",
// "2001:db8::/48", "example.com", "user@example.com". InvalidArgument for
// anything else. Host bits of a CIDR are cleared.
absl::StatusOr<std::string> NormalizePolicySubject(std::string_view subject);

class FleetState {
 public:
  // RocksDB under `path` (created if missing), e.g. <node>/db/cluster.
  // Restores every record, the digest, the version counter and the ETRN
  // claims. `generation` identifies this start of the node.
  static absl::StatusOr<std::unique_ptr<FleetState>> Open(
      const std::string& path, std::string node_id, uint64_t generation,
      FleetStateOptions options);
  static absl::StatusOr<std::unique_ptr<FleetState>> InMemory(
      std::string node_id, uint64_t generation, FleetStateOptions options);
  virtual ~FleetState() = default;

  virtual const std::string& node_id() const = 0;
  virtual uint64_t generation() const = 0;

  // ---- Local writes (this node is the origin; each bumps its version).
  // Slots with an empty node_id / zero generation take this node's; the
  // stored counts become the field-wise max. Returns the slots that
  // changed, as stored.
  virtual absl::StatusOr<std::vector<v1::RateSlot>> PutLocalRates(
      const std::vector<v1::RateSlot>& slots) = 0;
  virtual absl::StatusOr<v1::PolicyEntry> PolicyPut(const PolicySpec& spec) = 0;
  // A tombstone ordered after the subject's current winner.
  virtual absl::StatusOr<v1::PolicyEntry> PolicyDelete(
      std::string_view subject) = 0;
  // A new request with a fleet-unique id, expiring ttl_ms from now.
  virtual absl::StatusOr<v1::EtrnRequest> StartEtrn(std::string_view domain,
                                                    int64_t ttl_ms) = 0;
  // This node's result for a request (also claims it).
  virtual absl::StatusOr<v1::EtrnResult> RecordEtrnResult(
      std::string_view request_id, int code, std::string_view text) = 0;
  // True exactly once per request id, persisted: act on the request only
  // when this returns true.
  virtual absl::StatusOr<bool> ClaimEtrn(std::string_view request_id) = 0;
  // Live requests this node has not claimed (e.g. after a restart).
  virtual std::vector<v1::EtrnRequest> EtrnUnclaimed() const = 0;
  // Replaces this node's status record: node_id, hlc and version are set
  // here, the rest is the caller's. InvalidArgument when it is larger
  // than max_status_bytes or carries malformed text.
  virtual absl::StatusOr<v1::NodeStatus> PublishNodeStatus(
      v1::NodeStatus status) = 0;

  // ---- Anti-entropy.
  virtual v1::Digest GetDigest() const = 0;
  // The records a peer with `peer` lacks, at most max_bytes of them
  // (serialized size; at least one record when any is owed).
  virtual DeltaBatch DeltaFor(const v1::Digest& peer,
                              size_t max_bytes) const = 0;
  // Merges a peer's delta. Malformed records are refused and counted in
  // the result; an error only when the store cannot be written.
  virtual absl::StatusOr<Changes> Apply(const v1::Delta& delta) = 0;
  // Called after every Apply and local write that changed something,
  // outside the store's lock, on the caller's thread. Set before use.
  virtual void SetListener(std::function<void(const Changes&)> listener) = 0;

  // ---- Queries.
  // Winners that are neither tombstones nor expired at now_ms.
  virtual std::vector<v1::PolicyEntry> PolicyLive(int64_t now_ms) const = 0;
  // The live winner for a (normalised) subject.
  virtual std::optional<v1::PolicyEntry> PolicyLookup(std::string_view subject,
                                                      int64_t now_ms) const = 0;
  // Every slot (all nodes, generations) with slot_start >= window_start_sec,
  // of one key when `key` is not empty.
  virtual std::vector<v1::RateSlot> RatesInWindow(
      int64_t window_start_sec, std::string_view key = {}) const = 0;
  // The `n` keys with the highest `field` (RateCounts::Field) in the
  // window (slot_start >= window_start_sec), highest first, ties by key;
  // only keys `want` accepts (null: all), given their totals. Sums in place: no slot is copied, so it stays
  // cheap at 10^5-10^6 slots.
  using RateFilter =
      std::function<bool(std::string_view key, const RateCounts& counts)>;
  virtual std::vector<RateTotal> TopRates(int64_t window_start_sec, size_t n,
                                          std::string_view field,
                                          const RateFilter& want) const = 0;
  // Requests not expired at now_ms.
  virtual std::vector<v1::EtrnRequest> EtrnRequests(int64_t now_ms) const = 0;
  virtual std::vector<v1::EtrnResult> EtrnResults(
      std::string_view request_id) const = 0;
  // Every node's status record held (one per origin, by node id).
  virtual std::vector<v1::NodeStatus> NodeStatuses() const = 0;
  // Every policy winner, tombstones and expired entries included.
  virtual std::vector<v1::PolicyEntry> PolicyAll() const = 0;

  // ---- Expiry: drops old rate slots, policy tombstones and expired
  // entries past the horizon (with the records they overrode), expired ETRN
  // requests and claims, results older than the horizon, node statuses not
  // republished for the horizon. Call it
  // periodically (the agent: every gossip round or so).
  virtual absl::StatusOr<ExpireStats> Expire() = 0;

  virtual FleetStateStats Stats() const = 0;
};

}  // namespace zm::cluster

#endif  // ZM_CLUSTER_STATE_FLEET_STATE_H_
