// Membership's rules one message at a time, over a fake transport that
// records every call and lets the test answer it.
#include "cluster/membership/membership.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <deque>

#include "cluster/membership/membership_proto.h"

namespace zm::cluster {
namespace {

using ::testing::Contains;
using ::testing::Field;
using ::testing::IsEmpty;

class FakeTransport : public Transport {
 public:
  struct Ping {
    Member target;
    std::vector<Member> updates;
    int64_t timeout_ms;
    PingDone done;
  };
  struct PingReq {
    Member via;
    Member target;
    int64_t timeout_ms;
    PingReqDone done;
  };
  void SendPing(const Member& target, uint64_t, std::vector<Member> updates,
                int64_t timeout_ms, PingDone done) override {
    pings.push_back({target, std::move(updates), timeout_ms, std::move(done)});
  }
  void SendPingReq(const Member& via, const Member& target, uint64_t,
                   std::vector<Member>, int64_t timeout_ms,
                   PingReqDone done) override {
    pingreqs.push_back({via, target, timeout_ms, std::move(done)});
  }
  void SendJoin(const std::string& address, const Member&, int64_t,
                JoinDone done) override {
    joins.emplace_back(address, std::move(done));
  }
  void SendLeave(const Member& to, const Member& self, int64_t,
                 LeaveDone done) override {
    leaves.push_back({to, self});
    done(true);
  }

  std::deque<Ping> pings;
  std::deque<PingReq> pingreqs;
  std::deque<std::pair<std::string, JoinDone>> joins;
  std::vector<std::pair<Member, Member>> leaves;
};

Member Alive(std::string id, uint64_t gen = 1, uint64_t inc = 0) {
  Member m;
  m.node_id = id;
  m.address = id + ":7946";
  m.generation = gen;
  m.incarnation = inc;
  return m;
}

Member With(Member m, MemberState s, std::string reporter = "") {
  m.state = s;
  m.reporter = std::move(reporter);
  return m;
}

class MembershipTest : public ::testing::Test {
 protected:
  MembershipTest() { Make(); }

  void Make() {
    MembershipOptions o;
    o.self = Alive("me", 7);
    o.clock = [this] { return now_; };
    o.on_event = [this](const MemberEvent& e) { events_.push_back(e); };
    o.random_seed = 42;
    // The probe-interval form of the suspicion timeout (a 6 s floor),
    // which these tests were written for; the cluster.conf form (the
    // default) has its own test below.
    o.suspicion_min_ms = 6000;
    o.suspicion_max_ms = 0;
    m_ = std::make_unique<Membership>(o, transport_);
  }

  std::optional<Member> Find(const std::string& id) {
    for (const MemberView& v : m_->Members()) {
      if (v.member.node_id == id) return v.member;
    }
    return std::nullopt;
  }

  int64_t now_ = 1000;
  FakeTransport transport_;
  std::vector<MemberEvent> events_;
  std::unique_ptr<Membership> m_;
  const Sender peer_{"p1", 1, "p1:7946"};
};

TEST_F(MembershipTest, JoinAddsTheJoinerAndReturnsTheFullView) {
  std::vector<Member> view = m_->HandleJoin(Alive("p1"));
  ASSERT_EQ(view.size(), 2u);
  EXPECT_EQ(view[0].node_id, "me");
  EXPECT_EQ(view[1].node_id, "p1");
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_EQ(events_[0].type, MemberEventType::kJoined);
  EXPECT_EQ(m_->LiveCount(), 2u);
}

TEST_F(MembershipTest, JoinThroughSeedsMergesTheirView) {
  m_->Join({"me:7946", "seed:7946"});  // our own address is skipped
  ASSERT_EQ(transport_.joins.size(), 1u);
  EXPECT_EQ(transport_.joins[0].first, "seed:7946");
  transport_.joins[0].second(std::vector<Member>{
      Alive("seed"), Alive("p2"), With(Alive("gone"), MemberState::kDead, "x"),
      With(Alive("me", 6), MemberState::kDead, "x")});
  EXPECT_TRUE(Find("seed"));
  EXPECT_TRUE(Find("p2"));
  EXPECT_FALSE(Find("gone"));  // dead strangers are not taken over
  EXPECT_EQ(m_->Self().state, MemberState::kAlive);
}

TEST_F(MembershipTest, SuspicionAboutSelfIsRefutedWithAHigherIncarnation) {
  m_->HandleJoin(Alive("p1"));
  std::vector<Member> reply = m_->HandlePing(
      peer_, {With(Alive("me", 7, 0), MemberState::kSuspect, "p1")});
  EXPECT_EQ(m_->Self().incarnation, 1u);
  EXPECT_THAT(reply,
              Contains(AllOf(Field(&Member::node_id, "me"),
                             Field(&Member::incarnation, 1u),
                             Field(&Member::state, MemberState::kAlive))));
  EXPECT_EQ(m_->Stats().refutations, 1u);
  // A rumour about an earlier start of ours changes nothing.
  m_->HandlePing(peer_, {With(Alive("me", 6, 9), MemberState::kDead, "p1")});
  EXPECT_EQ(m_->Self().incarnation, 1u);
}

TEST_F(MembershipTest, PrecedenceByGenerationIncarnationThenState) {
  m_->HandleJoin(Alive("p2", 1, 3));
  events_.clear();
  // Older incarnation: ignored.
  m_->HandlePing(peer_, {With(Alive("p2", 1, 2), MemberState::kSuspect, "p1")});
  EXPECT_EQ(Find("p2")->state, MemberState::kAlive);
  // Same incarnation, worse state: taken.
  m_->HandlePing(peer_, {With(Alive("p2", 1, 3), MemberState::kSuspect, "p1")});
  EXPECT_EQ(Find("p2")->state, MemberState::kSuspect);
  // Same incarnation alive does not clear a suspicion; a higher one does.
  m_->HandlePing(peer_, {Alive("p2", 1, 3)});
  EXPECT_EQ(Find("p2")->state, MemberState::kSuspect);
  m_->HandlePing(peer_, {Alive("p2", 1, 4)});
  EXPECT_EQ(Find("p2")->state, MemberState::kAlive);
  ASSERT_EQ(events_.size(), 2u);
  EXPECT_EQ(events_[0].type, MemberEventType::kSuspect);
  EXPECT_EQ(events_[1].type, MemberEventType::kAlive);
}

TEST_F(MembershipTest, ANewGenerationReplacesTheOldSelf) {
  m_->HandleJoin(Alive("p2", 1, 5));
  m_->HandlePing(peer_, {With(Alive("p2", 1, 5), MemberState::kDead, "p1")});
  events_.clear();
  m_->HandleJoin(Alive("p2", 2, 0));
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_EQ(events_[0].type, MemberEventType::kJoined);
  EXPECT_EQ(events_[0].previous_generation, 1u);
  EXPECT_EQ(Find("p2")->generation, 2u);
  EXPECT_EQ(Find("p2")->state, MemberState::kAlive);
  // News about the old generation is stale.
  m_->HandlePing(peer_, {With(Alive("p2", 1, 9), MemberState::kDead, "p1")});
  EXPECT_EQ(Find("p2")->state, MemberState::kAlive);
}

TEST_F(MembershipTest, MalformedRecordsAreCountedAndIgnored) {
  Member bad = Alive("");
  Member long_id = Alive(std::string(300, 'x'));
  m_->HandlePing(peer_, {bad, long_id});
  EXPECT_EQ(m_->Stats().rejected_updates, 2u);
  EXPECT_EQ(m_->Members().size(), 1u);
  v1::Member p = ToProto(Alive("p3"));
  p.set_state(static_cast<v1::MemberState>(17));
  EXPECT_FALSE(FromProto(p).ok());
}

TEST_F(MembershipTest, FailedProbeSuspectsThenDeclaresDeadAfterTheTimeout) {
  m_->HandleJoin(Alive("p1"));
  m_->Tick();
  // The probe goes first; gossip pings may follow it.
  ASSERT_FALSE(transport_.pings.empty());
  auto ping = std::move(transport_.pings.front());
  transport_.pings.clear();
  EXPECT_EQ(ping.target.node_id, "p1");
  now_ += ping.timeout_ms;
  ping.done(false, {});  // no other member to ask: suspect at once
  EXPECT_EQ(Find("p1")->state, MemberState::kSuspect);
  EXPECT_EQ(Find("p1")->reporter, "me");
  // Two members: no confirmations expected, the minimum timeout applies
  // (suspicion_min_ms here), stretched by nothing.
  now_ += 6000 - 1 - ping.timeout_ms;
  m_->Tick();
  EXPECT_EQ(Find("p1")->state, MemberState::kSuspect);
  now_ += ping.timeout_ms + 1;
  m_->Tick();
  EXPECT_EQ(Find("p1")->state, MemberState::kDead);
  EXPECT_EQ(events_.back().type, MemberEventType::kDead);
  // What clusterd exports (zmnode_gossip_*): one probe, unanswered, one
  // suspect and one dead transition.
  MembershipStats st = m_->Stats();
  EXPECT_EQ(st.probe_acks, 0u);
  EXPECT_EQ(st.probe_failures, 1u);
  EXPECT_EQ(st.suspect_transitions, 1u);
  EXPECT_EQ(st.dead_transitions, 1u);
}

TEST_F(MembershipTest, SuspicionTimeoutsInTimeAsClusterConfSaysThem) {
  MembershipOptions o;
  o.self = Alive("me", 7);
  o.clock = [this] { return now_; };
  o.random_seed = 42;
  o.suspicion_min_ms = 2000;  // cluster.conf suspicion-min
  o.suspicion_max_ms = 6000;  // suspicion-max
  m_ = std::make_unique<Membership>(o, transport_);
  m_->HandleJoin(Alive("p1"));
  m_->Tick();
  ASSERT_FALSE(transport_.pings.empty());
  auto ping = std::move(transport_.pings.front());
  transport_.pings.clear();
  now_ += ping.timeout_ms;
  ping.done(false, {});
  ASSERT_EQ(Find("p1")->state, MemberState::kSuspect);
  // Two members: nobody can confirm, so suspicion-min applies (not the
  // old 6 s floor of probe intervals).
  now_ += 2000 - 1;
  m_->Tick();
  EXPECT_EQ(Find("p1")->state, MemberState::kSuspect);
  now_ += 1;
  m_->Tick();
  EXPECT_EQ(Find("p1")->state, MemberState::kDead);
}

TEST_F(MembershipTest, IndirectProbeAckKeepsTheTargetAlive) {
  m_->HandleJoin(Alive("p1"));
  m_->HandleJoin(Alive("p2"));
  m_->HandleJoin(Alive("p3"));
  m_->Tick();
  // The probe goes first; gossip pings may follow it.
  ASSERT_FALSE(transport_.pings.empty());
  auto ping = std::move(transport_.pings.front());
  transport_.pings.clear();
  now_ += ping.timeout_ms;
  ping.done(false, {});
  ASSERT_EQ(transport_.pingreqs.size(), 2u);  // the two other members
  for (const auto& r : transport_.pingreqs) {
    EXPECT_EQ(r.target.node_id, ping.target.node_id);
    EXPECT_NE(r.via.node_id, ping.target.node_id);
  }
  transport_.pingreqs[0].done(true, false, {});  // a nack
  transport_.pingreqs[1].done(true, true, {});   // an ack through p?
  EXPECT_EQ(Find(ping.target.node_id)->state, MemberState::kAlive);
  EXPECT_EQ(m_->Stats().probe_failures, 0u);
  EXPECT_EQ(m_->Stats().probe_acks, 1u);  // through p?
  EXPECT_EQ(m_->Stats().suspect_transitions, 0u);
}

TEST_F(MembershipTest, MissedNacksRaiseTheLocalHealthScoreAndStretchTimeouts) {
  m_->HandleJoin(Alive("p1"));
  m_->HandleJoin(Alive("p2"));
  m_->HandleJoin(Alive("p3"));
  m_->Tick();
  ASSERT_FALSE(transport_.pings.empty());
  auto ping = std::move(transport_.pings.front());
  transport_.pings.clear();
  const int64_t first_timeout = ping.timeout_ms;
  ping.done(false, {});
  ASSERT_EQ(transport_.pingreqs.size(), 2u);
  // Neither helper answers at all: two missed nacks.
  for (auto& r : transport_.pingreqs) r.done(false, false, {});
  transport_.pingreqs.clear();
  EXPECT_EQ(m_->Stats().awareness, 2);
  now_ += 10'000;
  m_->Tick();
  ASSERT_FALSE(transport_.pings.empty());
  EXPECT_EQ(transport_.pings.back().timeout_ms, first_timeout * 3);
}

TEST_F(MembershipTest, ConfirmationsFromIndependentReportersShortenSuspicion) {
  for (int i = 1; i <= 9; ++i) m_->HandleJoin(Alive("p" + std::to_string(i)));
  // Ten members: min = 6000 ms (the floor), max = 6 * min, one
  // confirmation expected.
  m_->HandlePing(peer_, {With(Alive("p5"), MemberState::kSuspect, "p1")});
  now_ += 6001;
  m_->Tick();
  EXPECT_EQ(Find("p5")->state, MemberState::kSuspect);
  // The same reporter again is no confirmation.
  m_->HandlePing(peer_, {With(Alive("p5"), MemberState::kSuspect, "p1")});
  m_->Tick();
  EXPECT_EQ(Find("p5")->state, MemberState::kSuspect);
  m_->HandlePing(peer_, {With(Alive("p5"), MemberState::kSuspect, "p2")});
  m_->Tick();
  EXPECT_EQ(Find("p5")->state, MemberState::kDead);
}

TEST_F(MembershipTest, UpdatesAreRetransmittedALimitedNumberOfTimes) {
  m_->HandleJoin(Alive("p1"));
  int carried = 0;
  for (int i = 0; i < 100; ++i) {
    for (const Member& u : m_->HandlePing(peer_, {})) {
      if (u.node_id == "p1") ++carried;
    }
  }
  // retransmit_mult * ceil(log10(2 + 1)) = 4.
  EXPECT_EQ(carried, 4);
}

TEST_F(MembershipTest, AStaleAccusationGetsTheRefutationBack) {
  m_->HandleJoin(Alive("p2", 1, 1));
  for (int i = 0; i < 100; ++i) m_->HandlePing(peer_, {});  // spent
  std::vector<Member> reply = m_->HandlePing(
      peer_, {With(Alive("p2", 1, 0), MemberState::kSuspect, "p1")});
  EXPECT_THAT(reply,
              Contains(AllOf(Field(&Member::node_id, "p2"),
                             Field(&Member::incarnation, 1u),
                             Field(&Member::state, MemberState::kAlive))));
  EXPECT_EQ(Find("p2")->state, MemberState::kAlive);
}

TEST_F(MembershipTest, ANewSuspectIsProbedFirstAndToldSo) {
  for (int i = 1; i <= 5; ++i) m_->HandleJoin(Alive("p" + std::to_string(i)));
  m_->HandlePing(peer_, {With(Alive("p3"), MemberState::kSuspect, "p1")});
  m_->Tick();
  ASSERT_FALSE(transport_.pings.empty());
  const auto& ping = transport_.pings.front();
  EXPECT_EQ(ping.target.node_id, "p3");
  ASSERT_FALSE(ping.updates.empty());
  EXPECT_EQ(ping.updates[0].node_id, "p3");
  EXPECT_EQ(ping.updates[0].state, MemberState::kSuspect);
}

TEST_F(MembershipTest, LeaveTellsPeersAndIsFinal) {
  m_->HandleJoin(Alive("p1"));
  m_->HandleJoin(Alive("p2"));
  bool done = false;
  m_->Leave([&] { done = true; });
  EXPECT_TRUE(done);
  ASSERT_EQ(transport_.leaves.size(), 2u);
  EXPECT_EQ(transport_.leaves[0].second.state, MemberState::kLeft);
  EXPECT_EQ(transport_.leaves[0].second.incarnation, 1u);
  EXPECT_EQ(m_->Self().state, MemberState::kLeft);
  // A left node neither probes nor refutes.
  transport_.pings.clear();
  now_ += 5000;
  m_->Tick();
  EXPECT_THAT(transport_.pings, IsEmpty());
}

TEST_F(MembershipTest, HandleLeaveMarksLeftNotDead) {
  m_->HandleJoin(Alive("p1", 1, 2));
  Member leaving = Alive("p1", 1, 3);
  m_->HandleLeave(leaving);
  EXPECT_EQ(Find("p1")->state, MemberState::kLeft);
  EXPECT_EQ(events_.back().type, MemberEventType::kLeft);
  // A late death notice at the old incarnation does not turn it dead.
  m_->HandlePing(peer_, {With(Alive("p1", 1, 2), MemberState::kDead, "p9")});
  EXPECT_EQ(Find("p1")->state, MemberState::kLeft);
}

TEST_F(MembershipTest, DeadMembersAreReapedAfterAWhile) {
  m_->HandleJoin(Alive("p1"));
  m_->HandlePing(peer_, {With(Alive("p1"), MemberState::kDead, "p2")});
  ASSERT_TRUE(Find("p1"));
  now_ += 3600 * 1000;
  m_->Tick();
  EXPECT_FALSE(Find("p1"));
}

TEST_F(MembershipTest, PingReqProbesTheTargetAndNacksInTime) {
  m_->HandleJoin(Alive("p2"));
  std::optional<bool> acked;
  m_->HandlePingReq(peer_, "p2", "p2:7946", 500, {},
                    [&](bool a, std::vector<Member>) { acked = a; });
  ASSERT_FALSE(transport_.pings.empty());
  EXPECT_EQ(transport_.pings[0].target.node_id, "p2");
  EXPECT_LT(transport_.pings[0].timeout_ms, 500);  // room for the nack
  transport_.pings[0].done(false, {});
  ASSERT_TRUE(acked.has_value());
  EXPECT_FALSE(*acked);
}

}  // namespace
}  // namespace zm::cluster
