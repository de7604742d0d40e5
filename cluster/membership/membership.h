// zm::cluster::Membership: who is in the fleet, SWIM with the Lifeguard
// refinements (docs/cluster-membership.md).
//
// The protocol logic only: no sockets, no threads, no clock of its own. The
// owner supplies a Transport (the cluster agent's gRPC client, or the
// simulator's in-memory network) and a clock, feeds inbound requests to the
// Handle* methods and calls Tick() often (every 50-100 ms; nothing is late
// by more than that). The same code runs in clusterd and in
// bench/cluster-sim.
//
//   zm::cluster::MembershipOptions opts;
//   opts.self = {.node_id = "mx1", .address = "10.0.0.1:7946",
//                .generation = fresh_id, .started_unix_ms = now};
//   opts.clock = [] { return SteadyMs(); };
//   opts.on_event = [&](const MemberEvent& e) { log ... };
//   Membership m(opts, transport);
//   m.Join({"10.0.0.2:7946", "10.0.0.3:7946"});
//   every 50 ms:            m.Tick();
//   inbound Ping:           reply.updates = m.HandlePing(from, updates);
//   inbound PingReq:        m.HandlePingReq(from, target, addr, timeout,
//                                           updates, reply_callback);
//   inbound Join / Leave:   m.HandleJoin(member) / m.HandleLeave(member);
//   on SIGTERM:             m.Leave(done); wait for done (bounded).
//
// Thread safety: every public method may be called from any thread; an
// internal mutex serialises them. Transport calls and event callbacks are
// made without that mutex held, so a Transport may complete a call
// synchronously (invoke the callback before returning). The owner must keep
// the Membership alive until every callback it handed to the Transport has
// run or been dropped (drain the transport before destroying it).
#ifndef ZM_CLUSTER_MEMBERSHIP_MEMBERSHIP_H_
#define ZM_CLUSTER_MEMBERSHIP_MEMBERSHIP_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace zm::cluster {

// Order matters: at equal (generation, incarnation) the greater state wins.
enum class MemberState { kAlive = 1, kSuspect = 2, kDead = 3, kLeft = 4 };

std::string_view MemberStateName(MemberState s);

// One member as gossiped (mirrors zmnode.cluster.v1.Member, see
// membership_proto.h for the conversion).
struct Member {
  std::string node_id;
  std::string address;       // "host:port"; the Transport's business
  uint64_t generation = 0;   // fresh at every start of that node
  uint64_t incarnation = 0;  // raised by the member to refute suspicion
  MemberState state = MemberState::kAlive;
  std::string version;
  int64_t started_unix_ms = 0;
  std::string reporter;  // kSuspect/kDead: the node that declared it

  friend bool operator==(const Member&, const Member&) = default;
};

// Who sent a request (the proto's Sender; checked against the TLS identity
// by the agent before it gets here).
struct Sender {
  std::string node_id;
  uint64_t generation = 0;
  std::string address;
};

// One member as this node sees it now.
struct MemberView {
  Member member;
  bool is_self = false;
  int64_t last_contact_ms = 0;  // clock ms of the last ack or request from it
                                // (0 = never)
  int64_t state_since_ms = 0;   // clock ms when it entered its state
};

enum class MemberEventType { kJoined, kSuspect, kAlive, kDead, kLeft };
std::string_view MemberEventName(MemberEventType t);

struct MemberEvent {
  MemberEventType type;
  Member member;
  // kJoined: the generation it replaced (0 = a new node id).
  uint64_t previous_generation = 0;
};

// Implemented by the owner. Each Send* must call `done` exactly once: with
// the answer, or with a failure once `timeout_ms` has passed (or at once
// when the peer is unreachable). `done` may run on any thread.
class Transport {
 public:
  virtual ~Transport() = default;

  // Direct probe (Ping RPC). acked = the target answered in time.
  using PingDone =
      std::function<void(bool acked, std::vector<Member> reply_updates)>;
  virtual void SendPing(const Member& target, uint64_t seq,
                        std::vector<Member> updates, int64_t timeout_ms,
                        PingDone done) = 0;

  // Indirect probe (PingReq RPC): ask `via` to probe `target`. replied =
  // `via` answered at all (an answer with acked = false is Lifeguard's
  // nack: `via` is fine but could not reach the target).
  using PingReqDone = std::function<void(bool replied, bool acked,
                                         std::vector<Member> reply_updates)>;
  virtual void SendPingReq(const Member& via, const Member& target,
                           uint64_t seq, std::vector<Member> updates,
                           int64_t timeout_ms, PingReqDone done) = 0;

  // Join RPC to a seed address: its full view, or why not.
  using JoinDone = std::function<void(absl::StatusOr<std::vector<Member>>)>;
  virtual void SendJoin(const std::string& address, const Member& self,
                        int64_t timeout_ms, JoinDone done) = 0;

  // Full sync: the Join RPC to a known member (its whole view back). By
  // default a SendJoin to its address; clusterd's transport sends it on
  // the channel it already has to that member.
  virtual void SendFullSync(const Member& target, const Member& self,
                            int64_t timeout_ms, JoinDone done) {
    SendJoin(target.address, self, timeout_ms, std::move(done));
  }

  // Leave RPC. ok = the peer took it.
  using LeaveDone = std::function<void(bool ok)>;
  virtual void SendLeave(const Member& to, const Member& self,
                         int64_t timeout_ms, LeaveDone done) = 0;
};

struct MembershipOptions {
  Member self;  // node_id, address, generation (required), version, started
  // Monotonic milliseconds (required). Timers, last contact and state_since
  // are in this clock.
  std::function<int64_t()> clock;
  // Optional: membership changes, called without the internal lock held.
  std::function<void(const MemberEvent&)> on_event;
  uint64_t random_seed = 0;  // 0 = from std::random_device

  // Protocol period: one direct probe per interval (stretched by the local
  // health multiplier).
  int64_t probe_interval_ms = 1000;
  int64_t probe_timeout_ms = 500;  // direct probe; the rest of the interval
                                   // is for the indirect probes
  int indirect_checks = 3;         // k members asked to probe for us
  // Suspicion timeout, with suspicion_max_ms set (the default, and what
  // cluster.conf's suspicion-min/-max give clusterd): min = suspicion_min_ms
  // * max(1, log10(n)), max = suspicion_max_ms * max(1, log10(n)); it
  // shrinks from max to min as up to (suspicion_mult - 2) independent
  // reporters confirm (Lifeguard). With suspicion_max_ms = 0: min =
  // max(suspicion_min_ms, suspicion_mult * max(1, log10(n)) *
  // probe_interval), max = suspicion_max_mult * min. The defaults are
  // cluster.conf's, so the simulator measures what clusterd runs.
  int suspicion_mult = 3;
  int suspicion_max_mult = 6;
  int64_t suspicion_min_ms = 2000;
  int64_t suspicion_max_ms = 6000;
  // Local health multiplier cap: probe timeout and interval are scaled by
  // (1 + score), score in [0, awareness_max - 1].
  int awareness_max = 8;
  // Dissemination: each update rides on up to retransmit_mult *
  // ceil(log10(n + 1)) messages; at most max_piggyback per message.
  int retransmit_mult = 4;
  int max_piggyback = 24;
  // Pending updates are also pushed (as pings) to gossip_fanout random
  // members every gossip_interval_ms, so news does not wait for probes.
  int64_t gossip_interval_ms = 200;
  int gossip_fanout = 3;
  // A dead member is pinged now and then (one every dead_probe_interval_ms)
  // so both sides of a healed partition find each other again.
  int64_t dead_probe_interval_ms = 5000;
  // Dead and left members are forgotten after this long.
  int64_t reap_after_ms = 3600 * 1000;
  // With no live peer, Join is retried on the seeds this often.
  int64_t rejoin_interval_ms = 10000;
  // Full sync (push-pull): every full_sync_interval_ms (times
  // ceil(log2(n / 32)) + 1 past 32 members, so a big fleet's idle traffic
  // grows slowly) one random live member is sent a Join with our record and
  // answers with its whole view, which we merge. A member whose news ran
  // out of retransmits before reaching us is learnt this way. 0 = off.
  int64_t full_sync_interval_ms = 30000;
  int64_t join_timeout_ms = 3000;
  int leave_fanout = 5;  // Leave RPCs sent by Leave()
  // Inbound bounds: more updates than this in one request are ignored.
  size_t max_inbound_updates = 512;
};

// Counters for metrics and the simulator.
struct MembershipStats {
  uint64_t probes = 0;
  uint64_t probe_acks = 0;        // probes answered (directly or through a peer)
  uint64_t probe_failures = 0;    // direct and indirect failed -> suspect
  uint64_t indirect_probes = 0;   // probes that needed ping-req
  uint64_t refutations = 0;       // we raised our incarnation
  uint64_t rejected_updates = 0;  // malformed member records from peers
  uint64_t updates_sent = 0;      // piggybacked records sent
  uint64_t full_syncs = 0;        // full-view exchanges started
  uint64_t full_sync_learnt = 0;  // members first learnt from a full sync
  uint64_t pings_answered = 0;    // probes from peers we answered
  uint64_t suspect_transitions = 0;  // members we saw become suspect
  uint64_t dead_transitions = 0;     // and dead
  int awareness = 0;              // current local health score
};

class Membership {
 public:
  // `transport` must outlive the Membership.
  Membership(MembershipOptions options, Transport& transport);
  ~Membership();
  Membership(const Membership&) = delete;
  Membership& operator=(const Membership&) = delete;

  // Contacts the seeds (addresses; our own is skipped) and merges their
  // views. Remembered: retried every rejoin_interval_ms while no live peer
  // is known. Calling it again replaces the seed list (re-resolved DNS).
  void Join(std::vector<std::string> seeds);

  // Drives the protocol: probes, suspicion timeouts, gossip, reaping.
  void Tick();

  // Graceful leave: marks us left (incarnation raised), tells up to
  // leave_fanout live members and gossips it; `done` runs once they have
  // answered or timed out. Afterwards the node answers requests but does
  // not probe.
  void Leave(std::function<void()> done);

  // Inbound side. Each returns (or passes to `reply`) the updates to send
  // back.
  std::vector<Member> HandlePing(const Sender& from,
                                 std::vector<Member> updates);
  using PingReqReply =
      std::function<void(bool acked, std::vector<Member> updates)>;
  void HandlePingReq(const Sender& from, const std::string& target_node_id,
                     const std::string& target_address, int64_t timeout_ms,
                     std::vector<Member> updates, PingReqReply reply);
  // Returns our full view (ourselves included) for the joiner.
  std::vector<Member> HandleJoin(const Member& joiner);
  void HandleLeave(const Member& leaver);

  // Everyone we know of, ourselves first.
  std::vector<MemberView> Members() const;
  // Number of members alive or suspect, ourselves included.
  size_t LiveCount() const;
  Member Self() const;
  MembershipStats Stats() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace zm::cluster

#endif  // ZM_CLUSTER_MEMBERSHIP_MEMBERSHIP_H_
