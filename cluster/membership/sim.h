// zm::cluster::sim::Simulator: a fleet of Memberships in one process, on a
// lossy in-memory network, with simulated time (no sleeping, no threads).
// The unit tests assert protocol behaviour through it and bench/cluster-sim
// measures convergence with it.
//
//   sim::Simulator::Options o;
//   o.nodes = 32;
//   o.net.loss = 0.05;
//   sim::Simulator s(o);
//   s.RunUntil([&] { return s.Converged(); }, 30'000);   // everyone joined
//   s.Kill(7);
//   auto t = s.RunUntil([&] { return s.AllSee(7, MemberState::kDead); },
//                       60'000);                          // ms, or nullopt
//   s.counters().false_dead;                              // must stay 0
//
// Messages are dropped with probability net.loss in each direction, take a
// uniform latency, and never cross a partition. A "starved" node runs every
// event (arrivals, timers, ticks) late by up to its starvation delay, like
// a process that does not get the CPU. Everything is deterministic for a
// given seed. Not thread-safe: one thread drives it.
#ifndef ZM_CLUSTER_MEMBERSHIP_SIM_H_
#define ZM_CLUSTER_MEMBERSHIP_SIM_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "cluster/membership/membership.h"

namespace zm::cluster::sim {

struct NetworkOptions {
  double loss = 0.0;           // per message, each direction
  int64_t latency_min_ms = 1;  // one-way latency, uniform in [min, max]
  int64_t latency_max_ms = 5;
};

class Simulator {
 public:
  struct Options {
    size_t nodes = 8;
    uint64_t seed = 1;
    NetworkOptions net;
    // Template for every node; self, clock, on_event and random_seed are
    // filled in per node.
    MembershipOptions membership;
    int64_t tick_ms = 50;
    // Every node joins through the first min(3, nodes) nodes at start.
    bool join_at_start = true;
    // Count the bytes of every message as its protobuf encoding plus
    // message_overhead (framing; 0 = payload only).
    bool count_bytes = false;
    size_t message_overhead = 0;
    // Sees every node's membership events (viewer index, event).
    std::function<void(size_t, const MemberEvent&)> observer;
    // Bytes added to every Ping answer (clusterd's answers carry an
    // 8-byte state hash: 9 with its tag).
    size_t ping_answer_extra_bytes = 0;
  };

  explicit Simulator(Options options);
  ~Simulator();

  int64_t now() const { return now_; }
  size_t size() const { return nodes_.size(); }

  // Runs events up to now + ms.
  void RunFor(int64_t ms);
  // Runs until `done` holds (checked every 10 simulated ms); the time it
  // took, or nullopt after max_ms.
  std::optional<int64_t> RunUntil(const std::function<bool()>& done,
                                  int64_t max_ms);

  // Fleet changes.
  void Kill(size_t i);     // crash: gone without a word
  void Restart(size_t i);  // a new generation joins through the seeds
  size_t AddNode();        // a new node joins through the seeds
  void Leave(size_t i);    // graceful leave, then stops
  void SetStarved(size_t i, int64_t max_delay_ms);
  // group[i] = side of node i; messages only flow within a side.
  void Partition(std::vector<int> group);
  void Heal();
  void SetLoss(double loss) { opts_.net.loss = loss; }
  // Called at node `prober` when node `peer` answered its direct Ping,
  // before the membership sees the answer (clusterd compares the state
  // hash of the answer there; the simulator's anti-entropy does the same).
  void SetPingAnswerHook(std::function<void(size_t prober, size_t peer)> f) {
    ping_answer_hook_ = std::move(f);
  }

  // Views, kept from each node's events.
  bool up(size_t i) const { return nodes_[i].up; }
  std::string NodeId(size_t i) const;
  Membership* node(size_t i) { return nodes_[i].m.get(); }
  // State of `subject`'s current generation as `viewer` sees it.
  std::optional<MemberState> StateIn(size_t viewer, size_t subject) const;
  // Every up node other than `subject` sees it in state `s`.
  bool AllSee(size_t subject, MemberState s) const;
  // Every up node sees every other up node alive.
  bool Converged() const;
  // Live peers of node i as it sees them (for anti-entropy peer choice).
  std::vector<size_t> AlivePeers(size_t i) const;

  struct Counters {
    uint64_t messages = 0;
    uint64_t dropped = 0;
    uint64_t false_suspect = 0;  // suspect events about a running node
    uint64_t false_dead = 0;     // dead events about a running node
    uint64_t dead_events = 0;
    uint64_t left_events = 0;
    uint64_t refutations = 0;  // alive-again events
  };
  const Counters& counters() const { return counters_; }
  uint64_t bytes_sent(size_t i) const { return nodes_[i].bytes_sent; }
  uint64_t total_bytes() const;
  void ResetBytes();

  // For protocols layered on the simulated network (anti-entropy): delivers
  // `on_arrival` at node `to` after the network's latency, unless lost or
  // partitioned or `to` is down; counts `bytes` against `from`.
  void Deliver(size_t from, size_t to, size_t bytes,
               std::function<void()> on_arrival);
  // Runs `fn` on node i at time `at` (late if i is starved), unless i went
  // down or restarted meanwhile.
  void At(size_t i, int64_t at, std::function<void()> fn);
  std::mt19937_64& rng() { return rng_; }

 private:
  class NodeTransport;
  struct Node {
    std::unique_ptr<NodeTransport> transport;
    std::unique_ptr<Membership> m;
    std::string id;
    std::string address;
    uint64_t generation = 0;
    uint64_t epoch = 0;  // bumped when the process dies or restarts
    bool up = false;
    int64_t starve_ms = 0;
    int group = 0;
    uint64_t bytes_sent = 0;
    // node id -> (generation, state) from this node's events.
    std::unordered_map<std::string, std::pair<uint64_t, MemberState>> view;
  };
  struct Event {
    int64_t at;
    uint64_t seq;
    std::function<void()> fn;
    bool operator>(const Event& o) const {
      return at != o.at ? at > o.at : seq > o.seq;
    }
  };

  void Start(size_t i, bool join);
  void ScheduleTick(size_t i, int64_t at);
  void Schedule(int64_t at, std::function<void()> fn);
  bool RunOne(int64_t limit);
  int64_t Latency();
  int64_t StarveDelay(size_t i);
  size_t Index(const std::string& address) const;
  void OnEvent(size_t viewer, const MemberEvent& e);
  Sender SenderOf(size_t i) const;
  size_t Bytes(size_t payload) const;

  Options opts_;
  int64_t now_ = 0;
  uint64_t seq_ = 0;
  uint64_t next_generation_ = 1;
  std::mt19937_64 rng_;
  std::priority_queue<Event, std::vector<Event>, std::greater<>> events_;
  std::vector<Node> nodes_;
  std::unordered_map<std::string, size_t> by_address_;
  std::vector<std::string> seeds_;
  Counters counters_;
  std::function<void(size_t, size_t)> ping_answer_hook_;
};

}  // namespace zm::cluster::sim

#endif  // ZM_CLUSTER_MEMBERSHIP_SIM_H_
