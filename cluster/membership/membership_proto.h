// Conversions between the Membership structs and the peer service's
// messages (zmnode.cluster.v1.Member, Sender), for the cluster agent's gRPC
// transport and for measuring message sizes in the simulator.
#ifndef ZM_CLUSTER_MEMBERSHIP_MEMBERSHIP_PROTO_H_
#define ZM_CLUSTER_MEMBERSHIP_MEMBERSHIP_PROTO_H_

#include <vector>

#include "absl/status/statusor.h"
#include "cluster/membership/membership.h"
#include "google/protobuf/repeated_field.h"
#include "zmnode/cluster/v1/peer.pb.h"

namespace zm::cluster {

namespace v1 = ::zmnode::cluster::v1;

v1::Member ToProto(const Member& m);
// Fails on a state outside alive..left (what a peer could send).
absl::StatusOr<Member> FromProto(const v1::Member& m);

v1::Sender ToProto(const Sender& s);
Sender FromProto(const v1::Sender& s);

void AppendToProto(const std::vector<Member>& members,
                   google::protobuf::RepeatedPtrField<v1::Member>* out);
// Drops (and counts in *rejected, when given) records FromProto refuses.
std::vector<Member> FromProto(
    const google::protobuf::RepeatedPtrField<v1::Member>& members,
    size_t* rejected = nullptr);

}  // namespace zm::cluster

#endif  // ZM_CLUSTER_MEMBERSHIP_MEMBERSHIP_PROTO_H_
