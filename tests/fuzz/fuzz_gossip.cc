// libFuzzer: the cluster agent's gossip message handlers (what a peer, or
// anyone holding a fleet certificate, can send to the peer service). The
// first byte picks the message; the rest is its protobuf encoding, handled
// as PeerService does (cluster/agent/agent_peer.cc):
//   0 PingRequest  -> Membership::HandlePing(from, updates)
//   1 JoinRequest  -> Membership::HandleJoin(self)
//   2 LeaveRequest -> Membership::HandleLeave(self)
//   3 PushRequest  -> FleetState::Apply(delta)
//   4 ExchangeRequest -> FleetState::DeltaFor(digest, cap)
// Invariants: no crash or sanitizer report; inbound updates beyond the
// bound are not all taken; what a state took from a delta it serves to a
// peer that has nothing, and that peer can apply it.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "cluster/membership/membership.h"
#include "cluster/membership/membership_proto.h"
#include "cluster/state/fleet_state.h"
#include "tests/fuzz/fuzz_util.h"
#include "zmnode/cluster/v1/peer.pb.h"

namespace {

namespace pb = ::zmnode::cluster::v1;
using zm::cluster::FromProto;

// Every outbound call fails at once: the handlers must not depend on it.
class NullTransport : public zm::cluster::Transport {
 public:
  void SendPing(const zm::cluster::Member&, uint64_t,
                std::vector<zm::cluster::Member>, int64_t,
                PingDone done) override {
    done(false, {});
  }
  void SendPingReq(const zm::cluster::Member&, const zm::cluster::Member&,
                   uint64_t, std::vector<zm::cluster::Member>, int64_t,
                   PingReqDone done) override {
    done(false, false, {});
  }
  void SendJoin(const std::string&, const zm::cluster::Member&, int64_t,
                JoinDone done) override {
    done(absl::UnavailableError("fuzz: no network"));
  }
  void SendLeave(const zm::cluster::Member&, const zm::cluster::Member&,
                 int64_t, LeaveDone done) override {
    done(false);
  }
};

std::unique_ptr<zm::cluster::FleetState> NewState(const char* id) {
  zm::cluster::FleetStateOptions o;
  o.clock = [] { return int64_t{1'763'700'000'000}; };
  auto st = zm::cluster::FleetState::InMemory(id, 1, o);
  zm::fuzz::Expect(st.ok());
  return *std::move(st);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const char* body = reinterpret_cast<const char*>(data) + 1;
  const int len = static_cast<int>(size - 1);
  const int which = data[0] % 5;

  if (which <= 2) {
    NullTransport transport;
    zm::cluster::MembershipOptions o;
    o.self.node_id = "me";
    o.self.address = "127.0.0.1:7946";
    o.self.generation = 1;
    int64_t now = 1000;
    o.clock = [&now] { return now; };
    o.random_seed = 1;
    zm::cluster::Membership m(o, transport);
    if (which == 0) {
      pb::PingRequest req;
      if (!req.ParseFromArray(body, len)) return 0;
      (void)m.HandlePing(FromProto(req.from()), FromProto(req.updates()));
      zm::fuzz::Expect(m.Members().size() <= o.max_inbound_updates + 2);
    } else if (which == 1) {
      pb::JoinRequest req;
      if (!req.ParseFromArray(body, len)) return 0;
      auto joiner = FromProto(req.self());
      if (!joiner.ok() || joiner->address.empty()) return 0;
      auto view = m.HandleJoin(*joiner);
      zm::fuzz::Expect(!view.empty() && view.front().node_id == "me");
    } else {
      pb::LeaveRequest req;
      if (!req.ParseFromArray(body, len)) return 0;
      auto leaver = FromProto(req.self());
      if (!leaver.ok()) return 0;
      m.HandleLeave(*leaver);
    }
    // The protocol keeps running on whatever it took in.
    for (int i = 0; i < 3; ++i) {
      now += 1000;
      m.Tick();
    }
    zm::fuzz::Expect(m.Self().node_id == "me");
    return 0;
  }

  auto state = NewState("me");
  if (which == 3) {
    pb::PushRequest req;
    if (!req.ParseFromArray(body, len)) return 0;
    auto changes = state->Apply(req.delta());
    zm::fuzz::Expect(changes.ok());  // in memory: only refusals, no errors
    // What it kept is served to a peer that has nothing, which can take
    // it in turn.
    auto batch = state->DeltaFor(pb::Digest(), 1 << 20);
    auto fresh = NewState("peer");
    zm::fuzz::Expect(fresh->Apply(batch.delta).ok());
  } else {
    pb::ExchangeRequest req;
    if (!req.ParseFromArray(body, len)) return 0;
    auto batch = state->DeltaFor(req.digest(), 64 * 1024);
    zm::fuzz::Expect(batch.delta.ByteSizeLong() <= 2 * 64 * 1024);
    (void)state->GetDigest();
  }
  return 0;
}
