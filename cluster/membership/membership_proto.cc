#include "cluster/membership/membership_proto.h"

#include "absl/status/status.h"

namespace zm::cluster {

v1::Member ToProto(const Member& m) {
  v1::Member p;
  p.set_node_id(m.node_id);
  p.set_address(m.address);
  p.set_generation(m.generation);
  p.set_incarnation(m.incarnation);
  p.set_state(static_cast<v1::MemberState>(static_cast<int>(m.state)));
  p.set_version(m.version);
  p.set_started_unix_ms(m.started_unix_ms);
  p.set_reporter(m.reporter);
  return p;
}

absl::StatusOr<Member> FromProto(const v1::Member& p) {
  const int state = static_cast<int>(p.state());
  if (state < static_cast<int>(MemberState::kAlive) ||
      state > static_cast<int>(MemberState::kLeft)) {
    return absl::InvalidArgumentError("member state out of range");
  }
  if (p.node_id().empty()) {
    return absl::InvalidArgumentError("member without node id");
  }
  Member m;
  m.node_id = p.node_id();
  m.address = p.address();
  m.generation = p.generation();
  m.incarnation = p.incarnation();
  m.state = static_cast<MemberState>(state);
  m.version = p.version();
  m.started_unix_ms = p.started_unix_ms();
  m.reporter = p.reporter();
  return m;
}

v1::Sender ToProto(const Sender& s) {
  v1::Sender p;
  p.set_node_id(s.node_id);
  p.set_generation(s.generation);
  p.set_address(s.address);
  return p;
}

Sender FromProto(const v1::Sender& p) {
  return {p.node_id(), p.generation(), p.address()};
}

void AppendToProto(const std::vector<Member>& members,
                   google::protobuf::RepeatedPtrField<v1::Member>* out) {
  for (const Member& m : members) *out->Add() = ToProto(m);
}

std::vector<Member> FromProto(
    const google::protobuf::RepeatedPtrField<v1::Member>& members,
    size_t* rejected) {
  std::vector<Member> out;
  out.reserve(members.size());
  for (const v1::Member& p : members) {
    absl::StatusOr<Member> m = FromProto(p);
    if (m.ok()) {
      out.push_back(*std::move(m));
    } else if (rejected != nullptr) {
      ++*rejected;
    }
  }
  return out;
}

}  // namespace zm::cluster
