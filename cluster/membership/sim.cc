#include "cluster/membership/sim.h"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

#include "cluster/membership/membership_proto.h"

namespace zm::cluster::sim {

// One node's side of the in-memory network: each call becomes events.
class Simulator::NodeTransport : public Transport {
 public:
  NodeTransport(Simulator& sim, size_t self) : sim_(sim), self_(self) {}

  void SendPing(const Member& target, uint64_t seq, std::vector<Member> updates,
                int64_t timeout_ms, PingDone done) override {
    const size_t to = sim_.Index(target.address);
    auto call = std::make_shared<Call<PingDone>>(std::move(done));
    ArmTimeout(call, timeout_ms, [](PingDone& d) { d(false, {}); });
    if (to == kNone) return;
    size_t bytes = 0;
    if (sim_.opts_.count_bytes) {
      v1::PingRequest req;
      *req.mutable_from() = ToProto(sim_.SenderOf(self_));
      req.mutable_from()->clear_address();  // as clusterd's probes
      req.set_seq(seq);
      AppendToProto(updates, req.mutable_updates());
      bytes = req.ByteSizeLong();
    }
    const Sender from = sim_.SenderOf(self_);
    const uint64_t epoch = sim_.nodes_[self_].epoch;
    sim_.Deliver(
        self_, to, bytes,
        [this, to, from, updates = std::move(updates), call, epoch,
         seq]() mutable {
          std::vector<Member> reply =
              sim_.nodes_[to].m->HandlePing(from, std::move(updates));
          size_t reply_bytes = 0;
          if (sim_.opts_.count_bytes) {
            v1::PingReply r;
            *r.mutable_from() = ToProto(sim_.SenderOf(to));
            r.mutable_from()->clear_address();
            r.set_seq(seq);
            AppendToProto(reply, r.mutable_updates());
            reply_bytes = r.ByteSizeLong() + sim_.opts_.ping_answer_extra_bytes;
          }
          Reply(to, reply_bytes, call, epoch,
                [this, to, reply = std::move(reply)](PingDone& d) mutable {
                  if (sim_.ping_answer_hook_) {
                    sim_.ping_answer_hook_(self_, to);
                  }
                  d(true, std::move(reply));
                });
        });
  }

  void SendPingReq(const Member& via, const Member& target, uint64_t seq,
                   std::vector<Member> updates, int64_t timeout_ms,
                   PingReqDone done) override {
    const size_t to = sim_.Index(via.address);
    auto call = std::make_shared<Call<PingReqDone>>(std::move(done));
    ArmTimeout(call, timeout_ms, [](PingReqDone& d) { d(false, false, {}); });
    if (to == kNone) return;
    size_t bytes = 0;
    if (sim_.opts_.count_bytes) {
      v1::PingReqRequest req;
      *req.mutable_from() = ToProto(sim_.SenderOf(self_));
      req.set_seq(seq);
      req.set_target_node_id(target.node_id);
      req.set_target_address(target.address);
      req.set_timeout_ms(static_cast<uint32_t>(timeout_ms));
      AppendToProto(updates, req.mutable_updates());
      bytes = req.ByteSizeLong();
    }
    const Sender from = sim_.SenderOf(self_);
    const uint64_t epoch = sim_.nodes_[self_].epoch;
    sim_.Deliver(
        self_, to, bytes,
        [this, to, from, target, updates = std::move(updates), call, epoch,
         timeout_ms]() mutable {
          const uint64_t via_epoch = sim_.nodes_[to].epoch;
          sim_.nodes_[to].m->HandlePingReq(
              from, target.node_id, target.address, timeout_ms,
              std::move(updates),
              [this, to, call, epoch, via_epoch](bool acked,
                                                 std::vector<Member> upd) {
                if (sim_.nodes_[to].epoch != via_epoch) return;
                size_t reply_bytes = 0;
                if (sim_.opts_.count_bytes) {
                  v1::PingReqReply r;
                  r.set_acked(acked);
                  AppendToProto(upd, r.mutable_updates());
                  reply_bytes = r.ByteSizeLong();
                }
                Reply(to, reply_bytes, call, epoch,
                      [acked, upd = std::move(upd)](PingReqDone& d) mutable {
                        d(true, acked, std::move(upd));
                      });
              });
        });
  }

  void SendJoin(const std::string& address, const Member& self,
                int64_t timeout_ms, JoinDone done) override {
    const size_t to = sim_.Index(address);
    auto call = std::make_shared<Call<JoinDone>>(std::move(done));
    ArmTimeout(call, timeout_ms, [](JoinDone& d) {
      d(absl::DeadlineExceededError("join timed out"));
    });
    if (to == kNone) return;
    size_t bytes = 0;
    if (sim_.opts_.count_bytes) {
      v1::JoinRequest req;
      *req.mutable_self() = ToProto(self);
      bytes = req.ByteSizeLong();
    }
    const uint64_t epoch = sim_.nodes_[self_].epoch;
    sim_.Deliver(self_, to, bytes, [this, to, self, call, epoch] {
      std::vector<Member> view = sim_.nodes_[to].m->HandleJoin(self);
      size_t reply_bytes = 0;
      if (sim_.opts_.count_bytes) {
        v1::JoinReply r;
        AppendToProto(view, r.mutable_members());
        reply_bytes = r.ByteSizeLong();
      }
      Reply(to, reply_bytes, call, epoch,
            [view = std::move(view)](JoinDone& d) mutable {
              d(std::move(view));
            });
    });
  }

  void SendLeave(const Member& target, const Member& self, int64_t timeout_ms,
                 LeaveDone done) override {
    const size_t to = sim_.Index(target.address);
    auto call = std::make_shared<Call<LeaveDone>>(std::move(done));
    ArmTimeout(call, timeout_ms, [](LeaveDone& d) { d(false); });
    if (to == kNone) return;
    size_t bytes = 0;
    if (sim_.opts_.count_bytes) {
      v1::LeaveRequest req;
      *req.mutable_self() = ToProto(self);
      bytes = req.ByteSizeLong();
    }
    const uint64_t epoch = sim_.nodes_[self_].epoch;
    sim_.Deliver(self_, to, bytes, [this, to, self, call, epoch] {
      sim_.nodes_[to].m->HandleLeave(self);
      Reply(to, 0, call, epoch, [](LeaveDone& d) { d(true); });
    });
  }

 private:
  static constexpr size_t kNone = static_cast<size_t>(-1);

  // A call completes once: by its reply or by its timeout.
  template <typename Done>
  struct Call {
    explicit Call(Done d) : done(std::move(d)) {}
    Done done;
    bool finished = false;
  };

  template <typename Done, typename Fn>
  void ArmTimeout(const std::shared_ptr<Call<Done>>& call, int64_t timeout_ms,
                  Fn fire) {
    sim_.At(self_, sim_.now() + std::max<int64_t>(timeout_ms, 1), [call, fire] {
      if (call->finished) return;
      call->finished = true;
      fire(call->done);
    });
  }

  // The reply travels back from `from` to us; `epoch` is ours when we sent
  // the request (a restarted process must not see its predecessor's
  // answers).
  template <typename Done, typename Fn>
  void Reply(size_t from, size_t bytes, const std::shared_ptr<Call<Done>>& call,
             uint64_t epoch, Fn complete) {
    const size_t me = self_;
    sim_.Deliver(
        from, me, bytes,
        [this, me, call, epoch, complete = std::move(complete)]() mutable {
          if (sim_.nodes_[me].epoch != epoch || call->finished) return;
          call->finished = true;
          complete(call->done);
        });
  }

  Simulator& sim_;
  const size_t self_;
};

Simulator::Simulator(Options options) : opts_(std::move(options)) {
  rng_.seed(opts_.seed);
  nodes_.resize(opts_.nodes);
  for (size_t i = 0; i < nodes_.size(); ++i) {
    nodes_[i].id = fmt::format("n{:03}", i);
    nodes_[i].address = fmt::format("sim:{}", i);
    by_address_[nodes_[i].address] = i;
  }
  for (size_t i = 0; i < std::min<size_t>(3, nodes_.size()); ++i) {
    seeds_.push_back(nodes_[i].address);
  }
  for (size_t i = 0; i < nodes_.size(); ++i) Start(i, opts_.join_at_start);
}

Simulator::~Simulator() = default;

std::string Simulator::NodeId(size_t i) const { return nodes_[i].id; }

void Simulator::Start(size_t i, bool join) {
  Node& n = nodes_[i];
  n.up = true;
  ++n.epoch;
  n.generation = next_generation_++;
  n.view.clear();
  // One transport per node for the simulator's life: events in flight
  // keep pointing at it across restarts.
  if (!n.transport) n.transport = std::make_unique<NodeTransport>(*this, i);
  MembershipOptions mo = opts_.membership;
  mo.self.node_id = n.id;
  mo.self.address = n.address;
  mo.self.generation = n.generation;
  mo.self.incarnation = 0;
  mo.self.version = "sim";
  mo.self.started_unix_ms = now_;
  mo.clock = [this] { return now_; };
  mo.random_seed = rng_() | 1;
  mo.on_event = [this, i](const MemberEvent& e) { OnEvent(i, e); };
  n.m = std::make_unique<Membership>(std::move(mo), *n.transport);
  if (join) n.m->Join(seeds_);
  // Spread the first ticks so the nodes do not probe in lockstep.
  std::uniform_int_distribution<int64_t> d(0, opts_.tick_ms - 1);
  ScheduleTick(i, now_ + d(rng_));
}

void Simulator::ScheduleTick(size_t i, int64_t at) {
  const uint64_t epoch = nodes_[i].epoch;
  Schedule(at + StarveDelay(i), [this, i, epoch] {
    Node& n = nodes_[i];
    if (!n.up || n.epoch != epoch) return;
    n.m->Tick();
    ScheduleTick(i, now_ + opts_.tick_ms);
  });
}

void Simulator::Schedule(int64_t at, std::function<void()> fn) {
  events_.push(Event{std::max(at, now_), seq_++, std::move(fn)});
}

void Simulator::At(size_t i, int64_t at, std::function<void()> fn) {
  const uint64_t epoch = nodes_[i].epoch;
  Schedule(at + StarveDelay(i), [this, i, epoch, fn = std::move(fn)] {
    if (!nodes_[i].up || nodes_[i].epoch != epoch) return;
    fn();
  });
}

void Simulator::Deliver(size_t from, size_t to, size_t bytes,
                        std::function<void()> on_arrival) {
  ++counters_.messages;
  nodes_[from].bytes_sent += Bytes(bytes);
  std::uniform_real_distribution<double> p(0.0, 1.0);
  if (nodes_[from].group != nodes_[to].group ||
      (opts_.net.loss > 0 && p(rng_) < opts_.net.loss)) {
    ++counters_.dropped;
    return;
  }
  // Whichever process runs at `to` when it arrives gets it.
  const int64_t at = now_ + Latency() + StarveDelay(to);
  Schedule(at, [this, to, fn = std::move(on_arrival)] {
    if (nodes_[to].up) fn();
  });
}

size_t Simulator::Bytes(size_t payload) const {
  return opts_.count_bytes ? payload + opts_.message_overhead : 0;
}

int64_t Simulator::Latency() {
  std::uniform_int_distribution<int64_t> d(
      opts_.net.latency_min_ms,
      std::max(opts_.net.latency_min_ms, opts_.net.latency_max_ms));
  return d(rng_);
}

int64_t Simulator::StarveDelay(size_t i) {
  if (nodes_[i].starve_ms <= 0) return 0;
  std::uniform_int_distribution<int64_t> d(0, nodes_[i].starve_ms);
  return d(rng_);
}

size_t Simulator::Index(const std::string& address) const {
  const auto it = by_address_.find(address);
  return it == by_address_.end() ? static_cast<size_t>(-1) : it->second;
}

Sender Simulator::SenderOf(size_t i) const {
  return {nodes_[i].id, nodes_[i].generation, nodes_[i].address};
}

bool Simulator::RunOne(int64_t limit) {
  if (events_.empty() || events_.top().at > limit) return false;
  // Moved out before running: the handler may push new events.
  Event e = std::move(const_cast<Event&>(events_.top()));
  events_.pop();
  now_ = e.at;
  e.fn();
  return true;
}

void Simulator::RunFor(int64_t ms) {
  const int64_t end = now_ + ms;
  while (RunOne(end)) {
  }
  now_ = end;
}

std::optional<int64_t> Simulator::RunUntil(const std::function<bool()>& done,
                                           int64_t max_ms) {
  const int64_t start = now_;
  const int64_t end = now_ + max_ms;
  // Checked every kCheckMs of simulated time: predicates over the views of
  // hundreds of nodes are not free.
  constexpr int64_t kCheckMs = 10;
  int64_t next_check = now_ + kCheckMs;
  if (done()) return 0;
  while (RunOne(end)) {
    if (now_ >= next_check) {
      next_check = now_ + kCheckMs;
      if (done()) return now_ - start;
    }
  }
  now_ = end;
  if (done()) return now_ - start;
  return std::nullopt;
}

void Simulator::Kill(size_t i) {
  nodes_[i].up = false;
  ++nodes_[i].epoch;
  nodes_[i].m.reset();
}

void Simulator::Restart(size_t i) {
  if (nodes_[i].up) Kill(i);
  Start(i, true);
}

size_t Simulator::AddNode() {
  const size_t i = nodes_.size();
  nodes_.emplace_back();
  nodes_[i].id = fmt::format("n{:03}", i);
  nodes_[i].address = fmt::format("sim:{}", i);
  by_address_[nodes_[i].address] = i;
  Start(i, true);
  return i;
}

void Simulator::Leave(size_t i) {
  const uint64_t epoch = nodes_[i].epoch;
  nodes_[i].m->Leave([this, i, epoch] {
    // Stop once told (from an event of this node, so not reentrant).
    Schedule(now_, [this, i, epoch] {
      if (nodes_[i].epoch == epoch && nodes_[i].up) Kill(i);
    });
  });
}

void Simulator::SetStarved(size_t i, int64_t max_delay_ms) {
  nodes_[i].starve_ms = max_delay_ms;
}

void Simulator::Partition(std::vector<int> group) {
  for (size_t i = 0; i < nodes_.size(); ++i) {
    nodes_[i].group = i < group.size() ? group[i] : 0;
  }
}

void Simulator::Heal() {
  for (Node& n : nodes_) n.group = 0;
}

void Simulator::OnEvent(size_t viewer, const MemberEvent& e) {
  if (opts_.observer) opts_.observer(viewer, e);
  MemberState s = MemberState::kAlive;
  switch (e.type) {
    case MemberEventType::kJoined:
      s = MemberState::kAlive;
      break;
    case MemberEventType::kAlive:
      s = MemberState::kAlive;
      ++counters_.refutations;
      break;
    case MemberEventType::kSuspect:
      s = MemberState::kSuspect;
      break;
    case MemberEventType::kDead:
      s = MemberState::kDead;
      ++counters_.dead_events;
      break;
    case MemberEventType::kLeft:
      s = MemberState::kLeft;
      ++counters_.left_events;
      break;
  }
  nodes_[viewer].view[e.member.node_id] = {e.member.generation, s};
  const size_t subject = Index(e.member.address);
  if (subject != static_cast<size_t>(-1) && nodes_[subject].up &&
      nodes_[subject].generation == e.member.generation) {
    if (s == MemberState::kSuspect) ++counters_.false_suspect;
    if (s == MemberState::kDead) ++counters_.false_dead;
  }
}

std::optional<MemberState> Simulator::StateIn(size_t viewer,
                                              size_t subject) const {
  const auto& view = nodes_[viewer].view;
  const auto it = view.find(nodes_[subject].id);
  if (it == view.end() || it->second.first != nodes_[subject].generation) {
    return std::nullopt;
  }
  return it->second.second;
}

bool Simulator::AllSee(size_t subject, MemberState s) const {
  for (size_t v = 0; v < nodes_.size(); ++v) {
    if (v == subject || !nodes_[v].up) continue;
    if (StateIn(v, subject) != s) return false;
  }
  return true;
}

bool Simulator::Converged() const {
  for (size_t s = 0; s < nodes_.size(); ++s) {
    if (nodes_[s].up && !AllSee(s, MemberState::kAlive)) return false;
  }
  return true;
}

std::vector<size_t> Simulator::AlivePeers(size_t i) const {
  std::vector<size_t> out;
  for (size_t j = 0; j < nodes_.size(); ++j) {
    if (j == i) continue;
    const auto it = nodes_[i].view.find(nodes_[j].id);
    if (it != nodes_[i].view.end() &&
        it->second.second == MemberState::kAlive) {
      out.push_back(j);
    }
  }
  return out;
}

uint64_t Simulator::total_bytes() const {
  uint64_t t = 0;
  for (const Node& n : nodes_) t += n.bytes_sent;
  return t;
}

void Simulator::ResetBytes() {
  for (Node& n : nodes_) n.bytes_sent = 0;
}

}  // namespace zm::cluster::sim
